"""Issue #28, the params and registry cases: two promotes at once, non-finite floats, unbounded
integers, and a params.yaml nested too deep for the parser."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from imgpipe.models.saved import save_model

# Each round resets the champion to version 1 and promotes 2 and 3 at once, under the lock a
# sqlite store gets, then the one a tracking server gets (here on the sqlite store).
LOCKS = ("file", "registry", "file", "registry")


def _store(tmp_path: Path) -> str:
    """A sqlite registry holding 'pets': version 1 (the champion, 0.5), 2 (0.9) and 3 (0.7),
    all scored on the same val data."""
    import mlflow

    from imgpipe.evaluate.registry import VAL_DATA_TAG, VAL_SCORE_TAG

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("pets")
    for score in ("0.5", "0.9", "0.7"):
        client.create_model_version(
            "pets", (tmp_path / "m").as_uri(), tags={VAL_SCORE_TAG: score, VAL_DATA_TAG: "same"}
        )
    client.set_registered_model_alias("pets", "champion", "1")
    return uri


def _promoter(uri: str, version: str, pause: float, barrier) -> None:
    """A child process: `imgpipe promote --version VERSION` once a round, all rounds in step.

    Between its check and its move it pauses, as a slow store would: without a lock both
    promoters check against version 1, and the later move wins, whatever its score.
    """
    import time

    import mlflow

    from imgpipe.evaluate import registry

    mlflow.set_tracking_uri(uri)
    must_beat, file_lock = registry._must_beat, getattr(registry, "promotion_lock", None)

    def slow_check(*args):
        must_beat(*args)
        time.sleep(pause)

    def server_lock(uri, name):
        from imgpipe.evaluate.promotion_lock import registry_lock

        return registry_lock(name, wait=60)

    registry._must_beat = slow_check
    for lock in LOCKS:
        registry.promotion_lock = file_lock if lock == "file" else server_lock
        barrier.wait()
        try:
            registry.promote("pets", version, None)
        except registry.NotPromoted:
            pass
        barrier.wait()


@pytest.mark.slow  # spawned processes, each importing MLflow
def test_two_promotes_at_once_leave_the_better_version_champion(tmp_path):
    # Real processes in step: each round both check against version 1 before either moves, unless a lock
    # makes them take turns; the worse one pauses longer, so without a lock its stale move lands last.
    import mlflow

    uri = _store(tmp_path)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    spawn = multiprocessing.get_context("spawn")  # no sqlite connection is inherited
    barrier = spawn.Barrier(3, timeout=120)
    children = [
        spawn.Process(target=_promoter, args=(uri, version, pause, barrier))
        for version, pause in (("2", 0.1), ("3", 0.6))
    ]  # the worse one moves last
    for child in children:
        child.start()
    champions = []
    for _ in LOCKS:
        client.set_registered_model_alias("pets", "champion", "1")
        barrier.wait()
        barrier.wait()
        champions.append(str(client.get_model_version_by_alias("pets", "champion").version))
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert champions == ["2"] * len(LOCKS)
    assert "pets.promote-lock" not in [m.name for m in client.search_registered_models()]


def test_a_registry_lock_left_by_a_killed_promote_is_named_not_waited_on_forever(tmp_path):
    import mlflow

    from imgpipe.errors import ImgpipeError
    from imgpipe.evaluate.promotion_lock import HOLDER_TAG, registry_lock

    uri = _store(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_registered_model("pets.promote-lock", tags={HOLDER_TAG: "box pid 7"})
    with pytest.raises(ImgpipeError, match=r"holds the registered model pets\.promote-lock \(box pid 7\).*delete"):
        with registry_lock("pets", wait=0.3):
            pass


# --- non-finite floats, unbounded integers, deep nesting -----------------------------------

REPO = Path(__file__).resolve().parents[1]


def _params() -> dict:
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())


def _leaves(node, path=()):
    """(path, value) of every number in ``node``, bools aside."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def _set(params: dict, path: tuple, value) -> dict:
    import copy

    out = copy.deepcopy(params)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _refusal(params: dict, section: str) -> str:
    """The message validating ``section`` of ``params`` gives, or '' when it passes."""
    from pydantic import ValidationError

    from imgpipe.params.base import format_validation_error
    from imgpipe.params.sections import OPTIONAL, SECTIONS

    try:
        {**SECTIONS, **OPTIONAL}[section].model_validate(params[section])
    except ValidationError as exc:
        return format_validation_error(exc, section, Path("params.yaml"))
    return ""


def _key(path: tuple) -> str:
    """The dotted key a message names: dict keys, and list indices where pydantic puts them."""
    return ".".join(str(p) for p in path)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_no_param_takes_a_non_finite_number(value):
    params = _params()
    accepted = []
    for path, _ in _leaves(params):
        if path[0] == "mlflow":
            continue
        message = _refusal(_set(params, path, value), path[0])
        # Free-form values (transform arguments, tune choices) name their field, then the place inside.
        field = _key(path[:3] if path[:2] in (("augment", "transforms"),) else path[:3] if path[1] == "space" else path)
        if field not in message:
            accepted.append((_key(path), message))
    assert not accepted


def test_weight_decay_inf_in_params_yaml_is_one_line_naming_it(tmp_path):
    from imgpipe.errors import ParamsError
    from imgpipe.params.sections import check_all

    text = (REPO / "params.yaml").read_text().replace("  weight_decay: 0.0\n", "  weight_decay: .inf\n")
    assert "weight_decay: .inf" in text
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as err:
        check_all(tmp_path / "params.yaml")
    assert str(err.value).startswith("params.yaml: train.weight_decay: ") and "\n" not in str(err.value)


def test_no_integer_param_is_unbounded():
    params = _params()
    unbounded = []
    for path, value in _leaves(params):
        if (
            not isinstance(value, int)
            or path[0] == "mlflow"
            or path[:2] in (("augment", "transforms"), ("tune", "space"))
        ):
            continue  # transform arguments: albumentations checks them; the space: below
        message = _refusal(_set(params, path, 10**12), path[0])
        if _key(path) not in message:
            unbounded.append(_key(path))
    assert not unbounded


def test_a_tune_range_beyond_the_param_it_tunes_is_refused_naming_it(tmp_path):
    import yaml

    from imgpipe.errors import ParamsError
    from imgpipe.tune.config import check_space, load_tune_config

    params = _params()
    params["tune"]["space"] = {"train.epochs": {"int": [1, 100_000_000]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"train\.epochs=100000000 would be refused: train\.epochs: .*10000"):
        check_space(tmp_path / "params.yaml", load_tune_config(tmp_path / "params.yaml"))


def test_a_model_json_with_a_non_finite_number_is_refused():
    from imgpipe.errors import ImgpipeError
    from imgpipe.models.spec import ModelSpec

    spec = {
        "name": "simple_cnn",
        "options": {"filters": 8, "kernel_size": 3, "dense_units": 8, "dropout": 0.0},
        "classes": ["a", "b"],
        "image_size": 16,
        "channels": 1,
        "mean": [0.5],
        "std": [0.2],
    }
    ModelSpec.from_dict(spec, "models/model.json")
    for key, bad in (
        ("mean", [float("nan")]),
        ("std", [float("inf")]),
        ("options", {**spec["options"], "dropout": float("nan")}),
    ):
        with pytest.raises(ImgpipeError, match=f"models/model.json: {key}"):
            ModelSpec.from_dict({**spec, key: bad}, "models/model.json")


def test_a_model_with_non_finite_weights_is_not_saved(tmp_path):
    import torch

    from imgpipe.errors import ImgpipeError
    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec

    spec = ModelSpec(
        "simple_cnn",
        {"filters": 4, "kernel_size": 3, "dense_units": 8, "dropout": 0.0},
        ["a", "b"],
        16,
        1,
        [0.5],
        [0.2],
    )
    model = create_model(spec)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ImgpipeError, match="train.lr") as err:
        save_model(tmp_path / "models", model, spec, {"run_id": "r"})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "models").exists()


def test_params_nested_20000_deep_are_one_sentence_naming_the_file(tmp_path):
    from imgpipe.errors import ParamsError
    from imgpipe.params.sections import check_all
    from imgpipe.tune.config import load_tune_config

    base = (REPO / "params.yaml").read_text()
    for name, text in (
        ("params.yaml", base + "\n" + "x: " + "[" * 20_000 + "]" * 20_000 + "\n"),
        ("params.yaml", base.replace("train:\n", "train:\n" + "".join("  " * i + "a:\n" for i in range(1, 2000)), 1)),
        ("tune.yaml", "space:\n  train.lr: " + "[" * 2000 + "]" * 2000 + "\n"),
    ):
        (tmp_path / "params.yaml").write_text(base.split("\ntune:")[0] if name == "tune.yaml" else text)
        (tmp_path / "tune.yaml").unlink(missing_ok=True)
        if name == "tune.yaml":
            (tmp_path / "tune.yaml").write_text(text)
        with pytest.raises(ParamsError, match=f"^{name} is nested more than .* levels deep") as err:
            (load_tune_config if name == "tune.yaml" else check_all)(tmp_path / "params.yaml")
        assert "\n" not in str(err.value)
