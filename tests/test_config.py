from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from imgpipe.errors import ParamsError
from imgpipe.params.augment import AugmentConfig
from imgpipe.params.balance import BalanceConfig
from imgpipe.params.base import SECTION_NAMES
from imgpipe.params.ingest import IngestConfig
from imgpipe.params.sections import OPTIONAL, SECTIONS
from imgpipe.params.tracking import MlflowConfig
from imgpipe.params.train import TrainConfig
from imgpipe.paths import find_project_root

REPO = Path(__file__).resolve().parents[1]


def write_params(tmp_path: Path, section: str, changes: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repo_params_are_valid():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params) == set(SECTION_NAMES) == set(SECTIONS) | set(OPTIONAL)  # each section has one schema
    for name, cls in {**SECTIONS, **OPTIONAL}.items():
        cfg = cls.load(REPO / "params.yaml")
        if name == "tune":  # a range holds only the kind it is given: compare without the unset ones
            assert cfg.model_dump(mode="json", by_alias=True, exclude_none=True) == _no_nulls(params[name])
        else:
            assert cfg.model_dump(mode="json") == params[name], name  # every key read, none defaulted away


def _no_nulls(value):
    return {k: _no_nulls(v) for k, v in value.items() if v is not None} if isinstance(value, dict) else value


@pytest.mark.parametrize(
    "section, changes, cls, key",
    [
        ("train", {"lr": -1}, TrainConfig, "train.lr"),
        ("train", {"optimizer": "adagrad"}, TrainConfig, "train.optimizer"),
        ("train", {"epochs": "ten"}, TrainConfig, "train.epochs"),
        ("train", {"learning_rate": 0.1}, TrainConfig, "train.learning_rate"),
        ("balance", {"method": "magic"}, BalanceConfig, "balance.method"),
        ("ingest", {"channels": 2}, IngestConfig, "ingest.channels"),
        ("ingest", {"val_fraction": 0.5, "test_fraction": 0.45}, IngestConfig, "ingest.test_fraction"),
        ("augment", {"copies": -1}, AugmentConfig, "augment.copies"),
        # MLflow's own rules, applied before training rather than after it.
        ("mlflow", {"registered_model": "my/model"}, MlflowConfig, "mlflow.registered_model"),
        # Cross-field checks still name the key to change.
        ("train", {"model": "simple_cnn", "pretrained": True}, TrainConfig, "train.pretrained"),
        ("train", {"optimizer": "adam", "nesterov": True}, TrainConfig, "train.nesterov"),
    ],
)
def test_bad_value_names_the_key(tmp_path, section, changes, cls, key):
    path = write_params(tmp_path, section, changes)
    with pytest.raises(ParamsError) as err:
        cls.load(path)
    assert key in str(err.value)


def test_nested_key_is_named(tmp_path):
    path = write_params(tmp_path, "train", {"base_cnn": {"filters": [4, 0], "kernel_size": 7, "padding": "same"}})
    with pytest.raises(ParamsError, match=r"train\.base_cnn\.filters"):
        TrainConfig.load(path)


def test_unknown_section_is_refused(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["trian"] = {"lr": 0.1}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="trian"):
        TrainConfig.load(path)


def test_config_is_immutable():
    cfg = TrainConfig.load(REPO / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.lr = 1.0


def test_project_root_found_from_a_subfolder(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.delenv("IMGPIPE_ROOT", raising=False)
    assert find_project_root(tmp_path / "a" / "b") == tmp_path.resolve()
