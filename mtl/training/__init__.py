"""Training: the LightningModule and everything a run needs around it.

``module`` (the multi-task LightningModule: network, masked losses, weighting, optimisation),
``metrics`` (per-task and per-source metrics that never wait for the GPU), ``optim``
(optimisers, schedules, parameter groups), ``precision`` (the precision chosen per machine),
``precise_bn`` (batch-norm statistics re-estimated after an epoch), ``callbacks`` (config in
checkpoints, exact resume, the results table), ``defaults`` (the callbacks every fit gets),
``evaluation`` (confusion matrices, prediction samples), ``ensemble`` (the checkpoint ensemble),
``summary`` and ``run_file`` (``run.json``: what a finished run leaves for reports),
``identity`` (what a run is: task set, backbone, weighting, fold), ``loggers`` (CSV and W&B
loggers that survive resume), ``resume`` (finding the checkpoint to resume).

Nothing is imported here: ``mtl.training.run_file`` is read by reports without torch.
"""
