"""A trained model as a Hugging Face Hub folder, written and read through ``huggingface_hub``'s
:class:`~huggingface_hub.ModelHubMixin`: ``model.safetensors`` (the weights), ``config.json``
(the hyper-parameters as plain data, the preprocessing, the ``mtl`` version) and ``README.md``
(the model card). The same folder loads offline from disk or from the Hub by its id, and a user
with an account pushes their own run with ``push_to_hub`` (``mtl publish``).

Loading rebuilds the module from ``config.json`` exactly as a checkpoint is rebuilt from its
hyper-parameters (Lightning's jsonargparse instantiator), so any backbone, head or weighting a
run used comes back without a config file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelHubMixin, hf_hub_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
)
from safetensors.torch import load_file, save_file

from mtl.data.preprocessing import Preprocessing
from mtl.errors import UserError
from mtl.models.hparams import to_plain

PREPROCESSING = "preprocessing"
"""``config.json`` entry: :meth:`Preprocessing.to_dict` of the training faces."""
VERSION = "mtl_version"
TRUSTED = ("mtl.", "torch.", "lightning.", "timm.")
"""Packages whose classes a ``config.json`` may name (building the model imports and calls
them): a downloaded config naming anything else is refused unless trusted explicitly."""
TAGS = ["mtl", "face-attributes", "multi-task", "smile", "emotion", "gender", "age"]


class HubModel(ModelHubMixin, library_name="mtl", tags=TAGS, pipeline_tag="image-classification"):
    """Save and load in the Hub layout. The class using it has plain hyper-parameters
    (``self.hparams``), an ``input_shape`` (C x H x W) and a ``preprocessing`` attribute
    (None: the default crop at the network's input size)."""

    preprocessing: Preprocessing | None
    hparams: Any

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        run: dict | None = None,
        **kwargs: Any,
    ) -> str | None:
        """The mixin's ``save_pretrained``, with the weights' floating-point ``dtype``
        (``torch.float16`` halves the file) and the finished ``run`` (its ``run.json``: test
        metrics, how it ran) that the model card reports."""
        card = {**(kwargs.pop("model_card_kwargs", None) or {}), "run": run}
        self._hub_dtype = dtype  # read by _save_pretrained, which the mixin calls
        try:
            return super().save_pretrained(save_directory, model_card_kwargs=card, **kwargs)
        finally:
            del self._hub_dtype

    def _save_pretrained(self, save_directory: Path) -> None:
        dtype = getattr(self, "_hub_dtype", torch.float32)
        state = {
            name: (t.to(dtype) if t.is_floating_point() else t).detach().cpu().contiguous()
            for name, t in self.state_dict().items()
        }
        save_file(state, str(save_directory / SAFETENSORS_SINGLE_FILE), metadata={"format": "pt"})
        config = {**self.hub_config(), "torch_dtype": str(dtype).removeprefix("torch.")}
        (save_directory / CONFIG_NAME).write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n"
        )

    def hub_config(self) -> dict[str, Any]:
        """``config.json``: the hyper-parameters (the backbone and head resolved, so the model
        does not depend on later defaults), the preprocessing and the version."""
        from mtl import __version__

        hparams = {k: v for k, v in dict(self.hparams).items() if k != "_instantiator"}
        hparams |= to_plain({"backbone": self.net.backbone, "head": self.net.head_config})
        preprocessing = self.preprocessing or Preprocessing.from_checkpoint({}, self.input_shape)
        return {**hparams, PREPROCESSING: preprocessing.to_dict(), VERSION: __version__}

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        from mtl.training.model_card import model_card

        return model_card(self.hub_config(), kwargs.get("run"), self._hub_mixin_info)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> HubModel:  # type: ignore[override]
        """The mixin's ``from_pretrained``: a folder (offline) or a Hub id, with
        ``config.json``'s values overridden by ``kwargs`` (``map_location`` too); a Hub id that
        cannot be fetched (offline, unknown, private) is a one-line error."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except HFValidationError:
            raise UserError(
                f"{pretrained_model_name_or_path}: no such folder, and not a Hub id (owner/name)"
            ) from None
        except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(
                f"{pretrained_model_name_or_path}: no such folder, and not loaded from the "
                f"Hugging Face Hub ({type(err).__name__}: {first})"
            ) from err

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        map_location: str = "cpu",
        trust_config: bool = False,
        **model_kwargs: Any,
    ) -> HubModel:
        """Rebuild from ``config.json`` (``model_kwargs`` override its values) and load the
        weights, cast to the module's own dtype. A folder on disk needs no network. The
        config's classes are imported and called, so only those of :data:`TRUSTED` packages
        are, unless ``trust_config``."""
        folder = Path(model_id)
        if folder.is_dir():
            weights = folder / SAFETENSORS_SINGLE_FILE
            if not weights.is_file() or config is None:
                raise UserError(
                    f"{model_id}: not a pretrained model folder (needs {CONFIG_NAME} and "
                    f"{SAFETENSORS_SINGLE_FILE}, as save_pretrained or mtl publish writes)"
                )
        else:
            file = hf_hub_download(
                model_id,
                SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
            weights = Path(file)
            if config is None:
                raise UserError(f"{model_id}: the Hub repository has no {CONFIG_NAME}")
        if not trust_config:
            check_class_paths(config, model_id)
        state = load_file(str(weights), device=str(map_location))
        return cls.from_config(config, state, **model_kwargs)

    @classmethod
    def from_config(
        cls, config: dict[str, Any], state: dict[str, torch.Tensor], **overrides: Any
    ) -> HubModel:
        """The module ``config`` describes, with the weights ``state``."""
        from lightning.pytorch.cli import instantiate_module  # checkpoints' INSTANTIATOR too

        params = set(cls._hub_mixin_init_parameters) - {"self"}
        hparams = {k: v for k, v in config.items() if k in params} | overrides
        module = instantiate_module(cls, hparams)
        module.load_state_dict(state)
        if PREPROCESSING in config:
            module.preprocessing = Preprocessing.from_dict(config[PREPROCESSING])
        return module.eval()


def check_class_paths(config: Any, where: str) -> None:
    """Refuse a config naming a class outside :data:`TRUSTED` (anywhere in it)."""
    if isinstance(config, dict):
        path = config.get("class_path")
        if isinstance(path, str) and not path.startswith(TRUSTED):
            raise UserError(
                f"{where}: config.json names {path}, outside {', '.join(TRUSTED)}; if you trust "
                "it, load with from_pretrained(..., trust_config=True)"
            )
        for value in config.values():
            check_class_paths(value, where)
    elif isinstance(config, list):
        for value in config:
            check_class_paths(value, where)
