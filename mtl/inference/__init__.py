"""Using a trained model: faces in photos and video -> attributes, and export.

``model`` (a checkpoint, its ensemble, an ONNX or TorchScript file behind one predictor
interface, with the preprocessing the model was trained with), ``media`` (images, folders and
videos as frames), ``analyze`` (detect, crop, predict, write rows and annotated media) and
``export`` (ONNX and TorchScript with the preprocessing in their metadata).
"""
