"""Pretrained models in the Hugging Face Hub layout: ``save_pretrained`` / ``from_pretrained``
round-trip a run offline, ``mtl publish`` writes a run's folder and model card (and pushes it
with an account), and ``mtl analyze`` with no model runs the shipped one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from skimage.data import astronaut

from mtl.cli import main
from mtl.cli.commands.analyze import lift_model
from mtl.errors import UserError
from mtl.inference.model import SHIPPED_MODEL, load_predictor
from mtl.training.module import MultiTaskModule
from tests.conftest import tiny_fit_args

FILES = {"config.json", "model.safetensors", "README.md"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fitted and tested run's log folder (checkpoints, run.json)."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main(tiny_fit_args(train=32, val=16, test=16) + ["--test_after_fit=true"])
    return root / "runs/mtl/version_0"


def outputs(module: MultiTaskModule, seed: int = 0) -> dict[str, torch.Tensor]:
    image = torch.rand(3, *module.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return module.eval()(image)


def test_from_pretrained_round_trips_a_run_offline(run, tmp_path):
    trained = MultiTaskModule.load_from_checkpoint(run / "checkpoints/last.ckpt", weights_only=True)
    trained.save_pretrained(tmp_path / "fp32")
    assert {p.name for p in (tmp_path / "fp32").iterdir()} == FILES
    loaded = MultiTaskModule.from_pretrained(tmp_path / "fp32")
    assert loaded.task_names == trained.task_names
    assert loaded.preprocessing == trained.preprocessing is not None
    for name, value in outputs(trained).items():
        torch.testing.assert_close(outputs(loaded)[name], value, rtol=1e-5, atol=1e-6)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_half_precision_halves_the_file_and_keeps_the_outputs_close(run, tmp_path):
    trained = MultiTaskModule.load_from_checkpoint(run / "checkpoints/last.ckpt", weights_only=True)
    trained.save_pretrained(tmp_path / "fp32")
    trained.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("fp32", "fp16")}
    assert size["fp16"] < 0.55 * size["fp32"]
    config = json.loads((tmp_path / "fp16" / "config.json").read_text())
    assert config["torch_dtype"] == "float16" and config["preprocessing"]["face"]["size"] == 48
    loaded = MultiTaskModule.from_pretrained(tmp_path / "fp16")
    assert next(loaded.parameters()).dtype == torch.float32  # cast back to the module's dtype
    for name, value in outputs(trained).items():
        torch.testing.assert_close(outputs(loaded)[name], value, rtol=1e-2, atol=1e-2)


def test_overrides_at_load_and_a_missing_folder_or_hub_id_are_clear(run, tmp_path):
    trained = MultiTaskModule.load_from_checkpoint(run / "checkpoints/last.ckpt", weights_only=True)
    trained.save_pretrained(tmp_path / "model")
    assert MultiTaskModule.from_pretrained(tmp_path / "model", compile="net").compile_net == "net"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a pretrained model folder"):
        MultiTaskModule.from_pretrained(tmp_path / "empty")
    with pytest.MonkeyPatch.context() as offline:  # as on a machine without the Hub (CI's):
        offline.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries
        with pytest.raises(UserError, match="not loaded from the Hugging Face Hub"):
            MultiTaskModule.from_pretrained("nobody-here/no-such-model")
    with pytest.raises(UserError, match="not a Hub id"):
        MultiTaskModule.from_pretrained(tmp_path / "typo" / "hub")  # a mistyped folder


def test_a_config_naming_an_untrusted_class_is_refused(run, tmp_path):
    trained = MultiTaskModule.load_from_checkpoint(run / "checkpoints/last.ckpt", weights_only=True)
    trained.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["backbone"]["class_path"].endswith("BKNet")  # resolved, not null
    assert config["head"]["hidden"] == [64, 64]
    config["optimizer"] = {"class_path": "os.system", "init_args": {}}
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="os.system, outside mtl"):
        MultiTaskModule.from_pretrained(tmp_path / "model")


def test_publish_writes_the_folder_and_a_card_from_run_json(run, tmp_path):
    main(["publish", str(run), "--out", str(tmp_path / "hub")])
    assert {p.name for p in (tmp_path / "hub").iterdir()} == FILES
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    assert card.data.library_name == "mtl" and card.data.license == "other"  # sources unknown
    assert "| s_smile | not known to mtl" in card.text
    record = json.loads((run / "run.json").read_text())
    acc = record["test"]["test/s_smile/smile/acc"]
    assert f"| s_smile | smile | acc | {acc:.4f} |" in card.text
    assert record["tested_on"]["s_smile"] == "its test split"  # the card says on which faces
    assert "each dataset's test faces (s_emotion: its test split; s_gender_age: " in card.text
    for section in ("## Training data and terms", "## Test metrics", "## Intended use",
                    "## Known limits", "## How to use"):  # fmt: skip
        assert section in card.text
    module = MultiTaskModule.from_pretrained(tmp_path / "hub")
    assert next(iter(module.state_dict().values())).dtype == torch.float32


def test_publish_pushes_with_the_hub_api(run, tmp_path, monkeypatch):
    pushed = {}

    def create_repo(self, repo_id, **kwargs):
        return type("Url", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        pushed.update(repo_id=repo_id, files={p.name for p in folder.iterdir()},
                      config=json.loads((folder / "config.json").read_text()),
                      card=(folder / "README.md").read_text())  # fmt: skip
        return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    main(["publish", str(run), "--out", str(tmp_path / "hub"), "--repo_id", "me/m"])
    assert (pushed["repo_id"], pushed["files"]) == ("me/m", FILES)
    assert pushed["config"]["torch_dtype"] == "float16"  # the folder written, as it is
    assert "## Test metrics" in pushed["card"] and "| s_smile | smile | acc |" in pushed["card"]


def test_shipped_model_card_and_size():
    card = ModelCard.load(SHIPPED_MODEL / "README.md")
    assert card.data.license == "other" and card.data.license_name == "non-commercial-research"
    assert set(card.data.datasets) == {"GENKI-4K", "FER-2013", "UTKFace"}
    assert "| genki4k | smile | acc |" in card.text and "non-commercial research" in card.text
    assert (SHIPPED_MODEL / "model.safetensors").stat().st_size < 10 * 2**20


def test_analyze_with_no_model_uses_the_shipped_one(tmp_path):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    main(["analyze", str(photo), "--out", str(tmp_path / "out")])
    with (tmp_path / "out" / "faces.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    for task in ("smile", "emotion", "gender", "age"):
        assert rows[0][task] and 0 <= float(rows[0][f"{task}_prob"]) <= 1
    assert load_predictor().name == "shipped Multi-task BKNet"


def test_the_first_argument_is_the_model_only_when_it_is_one(run, tmp_path):
    ckpt = str(run / "checkpoints/last.ckpt")
    assert lift_model([ckpt, "--ensemble", "2", "a.jpg"]) == ["--model", ckpt, "--ensemble",
                                                              "2", "a.jpg"]  # fmt: skip
    assert lift_model(["--out", "o", ckpt, "a.jpg"]) == ["--out", "o", "--model", ckpt, "a.jpg"]
    assert lift_model(["--every=2", str(tmp_path), "a.jpg"]) == [
        "--every=2",
        str(tmp_path),
        "a.jpg",
    ]
    assert lift_model(["a.jpg", ckpt]) == ["a.jpg", ckpt]  # only the first positional
    with pytest.raises(UserError, match="model file not found: .*lst.ckpt"):
        lift_model([str(run / "checkpoints/lst.ckpt"), "a.jpg"])  # never the shipped model
