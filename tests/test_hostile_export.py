"""Issue #28, export's part: an output path never costs the user a file, and every mistake
with one is a sentence. ``-o .``, ``-o models``, a folder of the user's, a file, a place
that cannot be written; a model.json at odds with itself; float images fed to TorchScript."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import SMALL, write_project

from imgpipe.cli import main
from imgpipe.errors import ImgpipeError
from imgpipe.models.saved import load_model, save_model
from imgpipe.serving.export import FILES, SPEC_FILE, export_model
from imgpipe.store.atomic import atomic_path
from imgpipe.store.dataset import Split, write_dataset


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones and .git included), with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("imgpipe: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def project(tmp_path, digits_small, monkeypatch) -> Path:
    """A project with a model, data/ingest, a .git and a file of the user's, as the working folder."""
    root = tmp_path / "proj"
    root.mkdir()
    write_project(root, digits_small, "simple_cnn", SMALL)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "notes.txt").write_text("mine")
    monkeypatch.chdir(root)
    return root


# ------------------------------------------------------------------ export -o


@pytest.mark.parametrize(
    "out, says",
    [
        (".", "is the project root"),
        ("models", "is the model folder"),
        ("..", "holds the project root"),
        ("ABS", "is the project root"),
        ("models/..", "is the project root"),
    ],
)
def test_export_over_the_project_or_the_model_is_refused_and_removes_nothing(project, capsys, out, says):
    before = snapshot(project)
    assert main(["export", "-o", str(project) if out == "ABS" else out]) == 2
    assert says in one_error(capsys)
    assert snapshot(project) == before


def test_export_from_a_subfolder_refuses_the_current_folder(project, capsys, monkeypatch):
    (project / "work").mkdir()
    monkeypatch.chdir(project / "work")
    assert main(["export", "-o", "."]) == 2
    assert "is the current folder" in one_error(capsys)
    assert (project / "work").is_dir()


def test_export_refuses_a_folder_of_the_users_files_but_replaces_its_own_previous_export(project, capsys):
    mine = project / "out"
    mine.mkdir()
    (mine / "plan.txt").write_text("keep me")
    assert main(["export", "--format", "torchscript", "-o", "out"]) == 2
    assert "already holds files that are not this command's previous output" in one_error(capsys)
    assert snapshot(mine) == {"plan.txt": b"keep me"}
    # Its own previous export (of the same format) is replaced; an empty folder is used.
    (project / "empty").mkdir()
    for _ in range(2):
        assert main(["export", "--format", "torchscript", "-o", "empty"]) == 0
    assert sorted(p.name for p in (project / "empty").iterdir()) == sorted([FILES["torchscript"], SPEC_FILE])
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []
    capsys.readouterr()
    # An export of another format, or one the user added a file to, is not claimed.
    assert main(["export", "--format", "onnx", "-o", "empty"]) == 2
    assert "not this command's previous output" in one_error(capsys)
    (project / "empty" / "README").write_text("how to load it")
    assert main(["export", "--format", "torchscript", "-o", "empty"]) == 2
    assert (project / "empty" / "README").read_text() == "how to load it"


def test_export_to_an_existing_file_is_one_sentence(project, capsys):
    assert main(["export", "-o", "notes.txt"]) == 2
    assert "notes.txt is a file, and export writes a folder" in one_error(capsys)
    assert (project / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("out", ["notes.txt/export", "/proc/imgpipe-export"])
def test_export_to_an_unwritable_path_is_one_sentence(project, capsys, out):
    if out.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc here: nothing can be created in it, not even by root")
    assert main(["export", "--format", "torchscript", "-o", out]) == 2
    err = one_error(capsys)
    assert "cannot write " in err and out in err and "choose a path in a folder you can write to" in err


# ------------------------------------------------------------------ TorchScript input


def test_the_torchscript_export_refuses_float_images_as_onnx_does(project):
    export_model(project, None, "torchscript", project / "ts")
    loaded = torch.jit.load(str(project / "ts" / FILES["torchscript"]))
    images = torch.randint(0, 256, (3, 8, 8, 1), dtype=torch.uint8)
    assert loaded(images).shape == (3, 3)
    for wrong in (images.float(), images.float() / 255, images[:, :7]):
        with pytest.raises(Exception, match=r"the images must be (uint8|\(N, H, W, C\) with)"):
            loaded(wrong)


# ------------------------------------------------------------------ model.json at odds with itself


@pytest.mark.parametrize("key, value", [("image_size", 16), ("channels", 3)])
def test_a_model_json_whose_preprocessing_disagrees_is_refused_naming_file_and_key(project, capsys, key, value):
    path = project / "models" / "model.json"
    data = json.loads(path.read_text())
    data["preprocessing"] = {"image_size": 8, "channels": 1, "resize": "squash", "max_pixels": 10**8, key: value}
    path.write_text(json.dumps(data))
    with pytest.raises(ImgpipeError, match=rf"model\.json: preprocessing\.{key} is {value} but {key} is "):
        load_model(project / "models")
    assert main(["export", "-o", "fresh"]) == 2
    assert f"preprocessing.{key}" in one_error(capsys) and not (project / "fresh").exists()


# ------------------------------------------------------------------ the other commands


def test_pack_to_an_unwritable_path_is_one_sentence(tmp_path, capsys):
    from helpers import write_digit_folder

    write_digit_folder(tmp_path / "src", per_class=1)
    (tmp_path / "a-file").write_text("x")
    assert main(["pack", str(tmp_path / "src"), str(tmp_path / "a-file" / "shards")]) == 2
    assert "a-file is a file, not a folder" in one_error(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "--seed", "-1"],
        ["embed", "--seed", "4294967296"],
        ["pack", "a", "b", "--seed", "-1"],
        ["inspect", "--seed", "one"],
    ],
)
def test_a_bad_seed_is_argparses_usage_error(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --seed:" in err and "give a seed from 0 to 4294967295" in err and "Traceback" not in err


def test_build_docker_over_the_project_or_a_users_folder_is_refused_and_its_own_context_replaced(
    project, capsys, monkeypatch
):
    from imgpipe.serving import docker as build_docker

    def generate(root, uri, out):  # MLflow's generate-dockerfile, without its minute of work
        (out / "model_dir").mkdir(parents=True)
        (out / "Dockerfile").write_text("COPY model_dir /opt/ml/model\n")

    monkeypatch.setattr(build_docker, "_generate_dockerfile", generate)
    (project / "mlflow.db").write_bytes(b"")  # the store exists
    (project / "ctx").mkdir()
    (project / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    (project / "ctx" / "app.py").write_text("print('mine')\n")
    before = snapshot(project)
    argv = ["build-docker", "--model", "runs:/0123/model", "-t", "x:1", "--no-build", "-o"]
    for out, says in ((".", "is the project root"), ("ctx", "not this command's previous output")):
        assert main([*argv, out]) == 2
        assert says in one_error(capsys)
    assert snapshot(project) == before
    for _ in range(2):  # its own previous context is replaced
        assert main([*argv, "build/docker"]) == 0
    assert sorted(p.name for p in (project / "build" / "docker").iterdir()) == ["Dockerfile", "model_dir"]


def test_a_markdown_reports_files_folder_replaces_only_pictures(tmp_path, monkeypatch):
    from test_report import hostile_summary

    from imgpipe.reporting import report

    monkeypatch.setattr(report, "collect", lambda root, run_id, folder: hostile_summary())
    (tmp_path / "notes_files").mkdir()
    (tmp_path / "notes_files" / "draft.docx").write_text("mine")
    with pytest.raises(ImgpipeError, match="notes_files already holds files that are not"):
        report.write_report(tmp_path, tmp_path / "notes.md")
    assert (tmp_path / "notes_files" / "draft.docx").read_text() == "mine"
    (tmp_path / "report_files").mkdir()
    (tmp_path / "report_files" / "confusion.png").write_bytes(b"a previous report's")
    report.write_report(tmp_path, tmp_path / "report.md")
    assert "abc123" in (tmp_path / "report.md").read_text() and list((tmp_path / "report_files").iterdir()) == []


# ------------------------------------------------------------------ atomic_path itself


def test_atomic_path_replaces_a_folder_only_when_its_caller_claims_it(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "users.txt").write_text("mine")
    with pytest.raises(ImgpipeError, match="already holds files that are not this command's previous output"):
        with atomic_path(target) as staged:
            staged.mkdir()
    assert snapshot(target) == {"users.txt": b"mine"}
    with atomic_path(target, replaces=lambda folder: (folder / "users.txt").is_file()) as staged:
        staged.mkdir()
        (staged / "new.txt").write_text("new")
    assert snapshot(target) == {"new.txt": b"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the old folder went with the temporary


def test_atomic_path_refuses_a_folder_over_a_file_and_keeps_the_users_dot_files(tmp_path):
    (tmp_path / "out").write_text("a file")
    (tmp_path / ".out.users.tmp").mkdir()  # looks like a temporary, but not one atomic_path makes
    with pytest.raises(ImgpipeError, match="is a file, and this command writes a folder there"):
        with atomic_path(tmp_path / "out") as staged:
            staged.mkdir()
    assert (tmp_path / "out").read_text() == "a file" and (tmp_path / ".out.users.tmp").is_dir()


def test_stage_outputs_replace_their_previous_selves_but_not_a_users_folder(tmp_path, digits_small):
    images, labels = digits_small
    from imgpipe.store.dataset import make_manifest, pixel_hash

    manifest = make_manifest(
        ids=[f"d{i}" for i in range(4)],
        labels=labels[:4] % 2,
        classes=["a", "b"],
        split="train",
        sha256=[pixel_hash(im) for im in images[:4]],
        origin="original",
    )
    split = {"train": Split(images[:4], manifest)}
    for folder in (tmp_path / "data", tmp_path / "models"):
        folder.mkdir()
        (folder / "users.txt").write_text("mine")
    with pytest.raises(ImgpipeError, match="already holds files"):
        write_dataset(tmp_path / "data", ["a", "b"], split)
    from model_helpers import seeded_model, spec

    model_spec = spec("simple_cnn", SMALL, channels=1, size=8, classes=2)
    with pytest.raises(ImgpipeError, match="already holds files"):
        save_model(tmp_path / "models", seeded_model(model_spec), model_spec, {"run_id": "r"})
    assert (tmp_path / "data" / "users.txt").read_text() == (tmp_path / "models" / "users.txt").read_text() == "mine"
    for _ in range(2):  # the stage's next run replaces its own output
        write_dataset(tmp_path / "ingest", ["a", "b"], split)
        save_model(tmp_path / "model", seeded_model(model_spec), model_spec, {"run_id": "r"})
    assert np.array_equal(np.load(tmp_path / "ingest" / "train.npy"), images[:4])
