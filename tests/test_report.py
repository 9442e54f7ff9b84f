"""imgpipe report's pages: what a run holds, shown as text, never as markup."""

from types import SimpleNamespace

from imgpipe.reporting.report import RunSummary, render_html, render_markdown


def hostile_summary() -> RunSummary:
    info = SimpleNamespace(run_id="abc123", run_name="<script>alert(1)</script>", start_time=0, status="FINISHED")
    data = SimpleNamespace(tags={"dvc.exp_name": "a|b *bold*"}, metrics={"test.accuracy": 0.5},
                           params={"train.model": "<img src=x onerror=alert(1)>"})
    run = SimpleNamespace(info=info, data=data, inputs=SimpleNamespace(dataset_inputs=[]))
    return RunSummary(run, "<b>team</b>", pictures=[])


def test_markdown_report_escapes_names_and_values():
    page = render_markdown(hostile_summary(), "files")
    assert "<script>" not in page and "<b>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;team&lt;/b&gt;" in page
    assert "a\\|b \\*bold\\*" in page  # a pipe cannot break the table, stars make no bold
    assert "| accuracy |  | 0.5000 |" in page


def test_html_report_escapes_names_and_values():
    page = render_html(hostile_summary())
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;b&gt;team&lt;/b&gt;" in page


def test_the_pipeline_table_names_each_stage_run_and_what_was_reused():
    from imgpipe.reporting.report import StageRow

    def stage_run(run_id, metrics):
        info = SimpleNamespace(run_id=run_id, run_name="x", start_time=0, status="FINISHED")
        return SimpleNamespace(info=info, data=SimpleNamespace(tags={}, metrics=metrics, params={}))

    summary = hostile_summary()
    summary.stages = [StageRow("ingest", stage_run("i" * 32, {"kept": 737.0, "imbalance_ratio": 9.5}), "repro@abc1234"),
                      StageRow("evaluate", stage_run("e" * 32, {"test.accuracy": 0.75}))]
    page = render_markdown(summary, "files")
    assert "## Pipeline" in page
    assert f"| ingest | {'i' * 32} | FINISHED, cached: reused from pipeline repro@abc1234 | kept 737, imbalance ratio 9.5 |" in page
    assert f"| evaluate | {'e' * 32} | FINISHED, ran here | test accuracy 0.75 |" in page
    assert "| accuracy |  | 0.7500 |" in page  # the scores are evaluate's
    assert "<h2>Pipeline</h2>" in render_html(summary)
