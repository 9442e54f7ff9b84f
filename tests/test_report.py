"""imgpipe report's pages: what a run holds, shown as text, never as markup."""

from types import SimpleNamespace

from imgpipe.tools.report import RunSummary, render_html, render_markdown


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
