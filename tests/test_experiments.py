"""The team workflow: queued DVC experiments logging in parallel to a PostgreSQL-backed
MLflow server, then compared with dvc exp show, metrics/params/plots diff and exp apply."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO, decoded_png, free_port, make_project

pytestmark = pytest.mark.slow

# Characters that must be escaped in a database URI and quoted in SQL.
PASSWORD = "t3st/p@ss:w'rd%"
EXPERIMENTS = {"fast-lr": "train.lr=0.003", "sgd": "train.optimizer=sgd"}
EPOCHS = 3
DATABASES: list[str] = []  # the server fixture's throwaway database (and role) name


def drop_database(cluster, database: str, user: str) -> None:
    """Remove a throwaway database (ending its connections) and its role."""
    from imgpipe.ops.tracking_server import psql

    psql(cluster, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(cluster, f"DROP DATABASE IF EXISTS {database}_optuna WITH (FORCE)")
    psql(cluster, f"DROP ROLE IF EXISTS {user}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """``imgpipe server`` on a free port with a throwaway database; its URI."""
    if shutil.which("pg_lsclusters") is None:
        pytest.skip("Debian's postgresql is not installed (.ci/run installs it: apt-get install postgresql)")
    from imgpipe.ops.tracking_server import find_cluster

    folder = tmp_path_factory.mktemp("server")
    # A role and database of its own, so a developer's running server is left alone.
    port, database = free_port(), f"imgpipe_test_{uuid.uuid4().hex[:8]}"
    DATABASES.append(database)
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("imgpipe")),
            "server",
            "--port",
            str(port),
            "--database",
            database,
            "--user",
            database,
            "--artifacts",
            str(folder / "artifacts"),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "IMGPIPE_MLFLOW_DB_PASSWORD": PASSWORD},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"imgpipe server exited {proc.returncode}:\n{(folder / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"imgpipe server did not answer in 180 s:\n{(folder / 'server.log').read_text()[-3000:]}"
                    )
                time.sleep(1)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        drop_database(find_cluster(), database, user=database)


@pytest.fixture(scope="module")
def team(tmp_path_factory, server):
    """A committed baseline, then two experiments queued and run two at a time."""
    proj = make_project(tmp_path_factory.mktemp("team") / "proj")
    env = {"MLFLOW_TRACKING_URI": server}
    proj.set_params({"train": {"epochs": EPOCHS}, "mlflow": {"experiment_name": "team"}})
    proj.commit("tiny project")
    proj.run("dvc", "repro", env=env)
    proj.commit("baseline")
    for name, setting in EXPERIMENTS.items():
        proj.run("dvc", "exp", "run", "--queue", "--name", name, "-S", setting, env=env)
    run_queue(proj, list(EXPERIMENTS), env)
    return proj, env


def run_queue(proj, names: list[str], env: dict | None = None) -> None:
    """``dvc queue start -j 2``, then wait until it is done; every experiment must succeed."""
    proj.run("dvc", "queue", "start", "-j", "2", env=env, leaves_daemons=True)
    deadline = time.monotonic() + 900
    while True:
        status = proj.run("dvc", "queue", "status", env=env).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    # A worker whose idle monitor died in DVC's filesystem-broker race stays up for ever
    # (treeverse/dvc#10428); stop whatever is left, as a user would.
    proj.run("dvc", "queue", "stop", env=env, leaves_daemons=True)
    assert status.count("Success") == len(names), status + "".join(
        proj.run("dvc", "queue", "logs", name, check=False).stdout[-3000:] for name in names
    )


def test_three_queued_experiments_two_at_a_time_all_succeed_on_a_fresh_store(tmp_path):
    """With no mlflow.db yet, parallel workers once raced to create it and lost a run (#13)."""
    import mlflow

    proj = make_project(tmp_path / "proj")
    proj.commit("tiny project")
    # The data once, into the cache the experiments share; its runs go elsewhere, so that
    # the experiments' workers are the ones to make mlflow.db.
    proj.run("dvc", "repro", "augment", env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/data-stages.db"})
    proj.commit("data")
    assert not (proj.root / "mlflow.db").exists()
    names = {"lr-2": "train.lr=0.002", "lr-3": "train.lr=0.003", "lr-4": "train.lr=0.004"}
    for name, setting in names.items():
        proj.run("dvc", "exp", "run", "--queue", "--name", name, "-S", setting)
    run_queue(proj, list(names))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{proj.root}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    pipelines = [r for r in runs if "imgpipe.pipeline" in r.data.tags]
    assert sorted(
        r.info.run_name for r in pipelines if r.info.status == "FINISHED" and "test.accuracy" in r.data.metrics
    ) == sorted(names)


def test_the_database_password_stays_off_command_lines(server):
    """``ps`` shows every user's command lines; the password travels in environments."""
    shown = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            shown.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended meanwhile
            continue
    assert any("mlflow server" in line or "mlflow.server" in line for line in shown)  # the scan sees the server
    assert not [line for line in shown if PASSWORD in line or "p%40ss" in line]


def runs_by_name(uri: str, pipelines: bool = True) -> dict:
    """The client, and the runs of experiment "team" by name: the pipeline runs (each named
    after its DVC experiment), or every run but the stages'."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("team")
    where = "tags.`imgpipe.pipeline` != ''" if pipelines else "tags.`imgpipe.stage` IS NULL"
    found = client.search_runs([experiment.experiment_id], filter_string=where)
    return client, {r.info.run_name: r for r in found}


def stage_of(client, pipeline, stage: str):
    """The run of ``stage`` that made the output ``pipeline`` used (its child when it ran there)."""
    return client.get_run(pipeline.data.tags[f"imgpipe.stage_run.{stage}"])


def test_queued_experiments_log_completely_and_concurrently_to_the_server(team, server):
    proj, env = team
    client, runs = runs_by_name(server)
    assert set(EXPERIMENTS) <= set(runs)
    baseline = proj.run("git", "rev-parse", "HEAD").stdout.strip()
    for name in EXPERIMENTS:
        run = runs[name]
        assert run.info.status == "FINISHED"
        trained, evaluated = stage_of(client, run, "train"), stage_of(client, run, "evaluate")
        for metric in ("train_loss", "val_loss", "val_accuracy", "lr"):
            assert [m.step for m in client.get_metric_history(trained.info.run_id, metric)] == list(
                range(1, EPOCHS + 1)
            )
        assert "test.accuracy" in run.data.metrics and "val.balanced_accuracy" in run.data.metrics  # rolled up
        assert "test.accuracy" in evaluated.data.metrics
        for child in (run, trained, evaluated):
            assert child.data.tags["dvc.exp_name"] == name
            assert child.data.tags["dvc.exp_baseline_rev"] == baseline == child.data.tags["mlflow.source.git.commit"]
        assert trained.data.tags["mlflow.parentRunId"] == evaluated.data.tags["mlflow.parentRunId"] == run.info.run_id
        # The data stages did not rerun: the baseline's runs made their outputs.
        made_in = client.get_run(stage_of(client, run, "ingest").data.tags["mlflow.parentRunId"])
        assert made_in.info.run_name.startswith("repro@") and run.data.tags["imgpipe.stage_run.ingest.cached"] == "true"
        assert {
            i.dataset.name
            for i in trained.inputs.dataset_inputs
            if {t.key: t.value for t in i.tags}["mlflow.data.context"] != "output"
        } == {"data/augment", "data/ingest"}
        artifacts = {a.path for a in client.list_artifacts(evaluated.info.run_id, "evaluation")}
        assert "evaluation/confusion_matrix.png" in artifacts
        assert client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id='{trained.info.run_id}'"
        )
        assert "database is locked" not in proj.run("dvc", "queue", "logs", name).stdout
    first, second = (runs[name].info for name in EXPERIMENTS)
    assert first.start_time < second.end_time and second.start_time < first.end_time, "the two did not overlap"

    # dvc exp show: one row per experiment, with the changed params and headline metrics.
    table = pd.read_csv(io.StringIO(proj.run("dvc", "exp", "show", "--csv", "--only-changed").stdout))
    rows = table.set_index("Experiment").loc[list(EXPERIMENTS)]
    assert list(rows["train.lr"]) == [0.003, 0.001] and list(rows["train.optimizer"]) == ["adam", "sgd"]
    assert rows["test.accuracy"].between(0, 1).all()
    assert not [c for c in table.columns if "per_class" in c]  # per-class lives in reports/per_class.csv
    mlflow_accuracy = [runs[name].data.metrics["test.accuracy"] for name in EXPERIMENTS]
    assert list(rows["test.accuracy"]) == pytest.approx(mlflow_accuracy)


def points(plots: dict, plot_id: str) -> list[dict]:
    """The data points of one plot in ``dvc plots diff --json``, each tagged with its rev."""
    return plots[plot_id][0]["content"]["data"]["values"]


def test_diffs_between_experiments_commits_and_the_workspace(team):
    proj, env = team
    a, b = EXPERIMENTS

    metrics = json.loads(proj.run("dvc", "metrics", "diff", a, b, "--json").stdout)["metrics.json"]
    assert metrics["test.log_loss"]["old"] != metrics["test.log_loss"]["new"]
    params = json.loads(proj.run("dvc", "params", "diff", a, b, "--json").stdout)["params.yaml"]
    assert (params["train.lr"]["old"], params["train.lr"]["new"]) == (0.003, 0.001)
    assert params["train.optimizer"] == {"old": "adam", "new": "sgd"}
    plots = json.loads(proj.run("dvc", "plots", "diff", a, b, "--json").stdout)["data"]
    for plot_id in ("Loss", "Recall by class (test)", "ROC, one-vs-rest (test)"):
        assert {d["rev"] for d in points(plots, plot_id)} == {a, b}, plot_id
    loss = {rev: [d["val_loss"] for d in points(plots, "Loss") if d["rev"] == rev] for rev in (a, b)}
    assert len(loss[a]) >= EPOCHS and loss[a] != loss[b]

    # Apply one experiment to the workspace: diffs against HEAD show what it changed.
    proj.run("dvc", "exp", "apply", a)
    assert proj.params["train"]["lr"] == 0.003
    params = json.loads(proj.run("dvc", "params", "diff", "--json").stdout)["params.yaml"]
    assert list(params) == ["train.lr"] and (params["train.lr"]["old"], params["train.lr"]["new"]) == (0.001, 0.003)
    workspace = json.loads(proj.run("dvc", "metrics", "diff", "--json").stdout)["metrics.json"]
    assert workspace["test.log_loss"]["old"] != workspace["test.log_loss"]["new"]
    plots = json.loads(proj.run("dvc", "plots", "diff", "--json").stdout)["data"]
    assert {d["rev"] for d in points(plots, "Loss")} == {"workspace", "HEAD"}
    text = proj.run("dvc", "metrics", "diff").stdout
    assert "test.accuracy" in text and "Change" in text

    # Committed, the same change shows between two commits.
    proj.commit(f"adopt experiment {a}")
    commits = json.loads(proj.run("dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)["metrics.json"]
    assert commits == workspace
    assert json.loads(proj.run("dvc", "params", "diff", "HEAD~1", "HEAD", "--json").stdout)["params.yaml"] == params
    html = proj.run("dvc", "plots", "diff", "HEAD~1", "HEAD", "-o", "plots_diff").stdout
    page = (proj.root / "plots_diff" / "index.html").read_text()
    assert "Loss" in page and all(f'"rev": "{rev}"' in page for rev in ("HEAD~1", "HEAD")), html  # both commits' points


# Debian's chromium in a closed network: no first-run, sync or update traffic to wait on.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("IMGPIPE_TEST_ARTIFACTS", REPO / "test-artifacts"))


def test_mlflow_ui_shows_the_pipeline_run_and_its_five_stages_in_a_real_browser(team, server):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make setup")
    client, runs = runs_by_name(server)
    # The baseline's `dvc repro` ran all five stages; an experiment ran train and evaluate.
    (name,) = [n for n in runs if n.startswith("repro@")]
    pipeline, experiment = runs[name], runs["fast-lr"]
    evaluated = stage_of(client, experiment, "evaluate")
    base = f"{server}/#/experiments/{pipeline.info.experiment_id}/runs"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"{base}/{pipeline.info.run_id}")
            page.get_by_role("heading", name=name).wait_for(timeout=60_000)
            # The overview lists the child runs, one per stage, and the stage table of the description.
            page.get_by_text("Child runs", exact=True).first.wait_for(timeout=30_000)
            for stage in ("ingest", "balance", "augment", "train", "evaluate"):
                page.get_by_role("link", name=stage, exact=True).first.wait_for(timeout=30_000)
            assert page.inner_text("body").count("ran here") == 5
            page.screenshot(path=str(SCREENSHOTS / "mlflow-pipeline-run.png"), full_page=True)

            # An experiment's pipeline: evaluate's test accuracy rolled up, the data stages cached.
            page.goto(f"{base}/{experiment.info.run_id}")
            page.get_by_role("heading", name="fast-lr").wait_for(timeout=60_000)
            page.get_by_text("test.accuracy", exact=True).first.wait_for(timeout=30_000)
            body = page.inner_text("body")
            assert f"{experiment.data.metrics['test.accuracy']:g}"[:5] in body and body.count("cached") >= 3

            # The confusion matrix opens from evaluate's artifact tree and is a loaded image.
            page.goto(f"{base}/{evaluated.info.run_id}/artifacts/evaluation/confusion_matrix.png")
            page.get_by_text("confusion_matrix.png", exact=True).first.wait_for(timeout=30_000)
            image = page.locator("img[src^='blob:']").first
            image.wait_for(timeout=30_000)
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 100", arg=image.element_handle(), timeout=30_000
            )
            page.screenshot(path=str(SCREENSHOTS / "mlflow-run-confusion-matrix.png"))
        finally:
            browser.close()
    width, height = decoded_png(SCREENSHOTS / "mlflow-pipeline-run.png")
    assert width >= 1400 and height >= 1200  # the whole page, at least the viewport


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_report_summarises_the_latest_run_with_its_plots(team, server, name):
    import base64
    import re

    proj, env = team
    _, runs = runs_by_name(server)
    latest = max(runs.values(), key=lambda r: r.info.start_time)
    proj.set_params({"mlflow": {"experiment_name": "team"}})
    proc = proj.run(str(Path(sys.executable).with_name("imgpipe")), "report", "-o", name, env=env)
    assert name in proc.stdout
    text = (proj.root / name).read_text()
    assert latest.info.run_name in text and latest.info.run_id in text
    assert f"{latest.data.metrics['test.accuracy']:.4f}" in text
    assert "data/augment" in text  # the data it saw, with its DVC hash
    assert "Pipeline" in text and all(f"{stage}" in text for stage in ("ingest", "balance", "augment", "evaluate"))
    if name.endswith(".html"):
        images = re.findall(r"""src=["']data:image/png;base64,([^"']+)""", text)
        assert len(images) >= 3 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    else:
        assert "![Confusion matrix (test)](report_files/confusion_matrix.png)" in text
        assert (proj.root / "report_files" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_tune_keeps_its_study_in_the_team_postgresql(team, server):
    """With the server, the study lives in the database `imgpipe server` made beside MLflow's,
    and the trial's run is nested under the study's run on the server."""
    from urllib.parse import quote

    import optuna

    from imgpipe.ops.tracking_server import find_cluster

    proj, env = team
    database = DATABASES[-1]
    storage = (
        f"postgresql+psycopg://{database}:{quote(PASSWORD, safe='')}@127.0.0.1:{find_cluster().port}/{database}_optuna"
    )
    refused = proj.run("imgpipe", "tune", "--trials", "1", env=env, check=False)
    assert refused.returncode == 2 and "IMGPIPE_TUNE_STORAGE" in refused.stderr
    proj.set_params({"tune": {"space": None}})  # replace the shipped space, not merge with it
    proj.set_params({"tune": {"space": {"train.lr": {"log_uniform": [1.0e-3, 3.0e-3]}}}})
    proj.run("imgpipe", "tune", "--trials", "1", "--study", "team", env={**env, "IMGPIPE_TUNE_STORAGE": storage})
    study = optuna.load_study(study_name="team", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    _, runs = runs_by_name(server, pipelines=False)
    assert runs["tune-team-0"].data.tags["mlflow.parentRunId"] == runs["tune-team"].info.run_id
