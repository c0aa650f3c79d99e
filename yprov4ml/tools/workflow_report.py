"""``yprov4ml report WF_DIR``: a self-contained HTML report of a workflow — its tasks, their status and
durations, the runs they ran with their key metrics, and the picture (failed and interrupted tasks marked).

It reads the workflow's own documents (``bundle.prov.json``, else ``workflow.prov.json``), never an index.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..collectors.groups import USER, metric_group
from ..errors import NotARunError
from ..search.extract import RankRows, WorkflowRows, extract, time_ms
from ..storage.files import atomic_write_text, read_json

WORKFLOW_DOCUMENTS = ("bundle.prov.json", "workflow.prov.json")
MAX_METRICS = 6  # key metrics per run in the tasks table
E = html.escape
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}"
         "th{background:#f3f3f3}.FINISHED{background:#d8f0d8}.FAILED{background:#f6c6c6;font-weight:bold}"
         ".INTERRUPTED,.KILLED{background:#fbe0b0;font-weight:bold}svg{max-width:100%;height:auto}"
         "pre{white-space:pre-wrap;margin:0}")


def workflow_document(path: Path) -> Path | None:
    """The workflow document a directory (or file) names, or None when it names none."""
    if path.is_file() and path.name in WORKFLOW_DOCUMENTS:
        return path
    if path.is_dir():
        return next((path / name for name in WORKFLOW_DOCUMENTS if (path / name).is_file()), None)
    return None


def _runs_of(workflow: WorkflowRows, ranks: list[RankRows]) -> dict[str, list[RankRows]]:
    by_key = {(r.run_id, r.rank): r for r in ranks}
    out: dict[str, list[RankRows]] = {}
    for task in workflow.tasks:
        out[task.task_id] = [by_key[(run_id, rank)] for run_id, _, rank in task.runs if (run_id, rank) in by_key]
    return out


def _metrics(rank: RankRows) -> str:
    shown = [(k, c, last) for k, c, last, *_ in sorted(rank.metrics) if metric_group(k) == USER][:MAX_METRICS]
    return ", ".join(f"{E(k)}@{E(c)} = {last:.4g}" if isinstance(last, float) else f"{E(k)}@{E(c)} = —"
                     for k, c, last in shown)


def _picture(folder: Path, document: Path) -> str:
    """The bridge's own picture when it drew one, else one laid out now; a note when Graphviz is missing."""
    drawn = folder / "graph.svg"
    if drawn.is_file():
        text = drawn.read_text(encoding="utf-8")
    else:
        from ..explorer.graphs import workflow_dot
        from ..prov.render import NoGraphviz, inline_svg

        rows = extract(document, read_json(document))
        workflow = rows.workflows[0]
        tasks = [{"task_id": t.task_id, "status": t.status} for t in workflow.tasks]
        files = [{"task_id": t.task_id, "role": f.role, "label": f.label} for t in workflow.tasks for f in t.files]
        runs = {task: [{"run_id": r.run_id, "status": r.status, "ranks": [{"rank": r.rank, "status": r.status,
                                                                             "host": r.host}]} for r in items]
                for task, items in _runs_of(workflow, rows.ranks).items()}
        expanded = {f"task:{t['task_id']}" for t in tasks}
        try:
            text = inline_svg(workflow_dot(workflow.workflow_id, workflow.status, tasks, files, runs, expanded))
        except NoGraphviz as exc:
            return f"<p>{E(str(exc))}</p>"
    from ..prov.render import without_links

    return without_links(text[text.index("<svg"):])


def write_workflow_report(path: str | Path, output: str | Path) -> Path:
    """Write the workflow's report to ``output``: one HTML file, everything inline, no script."""
    path = Path(path)
    document = workflow_document(path)
    if document is None:
        raise NotARunError(f"{path} holds no workflow document ({' or '.join(WORKFLOW_DOCUMENTS)}): give the "
                           "directory `yprov4wfs-bridge build` or a workflow manager wrote")
    rows = extract(document, read_json(document))
    if not rows.workflows:
        raise NotARunError(f"{document} is not a workflow document")
    workflow = rows.workflows[0]
    runs = _runs_of(workflow, rows.ranks)
    started, ended = time_ms(workflow.start_time), time_ms(workflow.end_time)
    took = f"{(ended - started) / 1000:.1f} s" if started is not None and ended is not None else "—"
    counts: dict[str, int] = {}
    for task in workflow.tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    table = []
    for task in workflow.tasks:
        start, end = time_ms(task.start_time), time_ms(task.end_time)
        duration = f"{(end - start) / 1000:.2f}" if start is not None and end is not None else "—"
        ins = ", ".join(E(f.label) for f in task.files if f.role == "used")
        outs = ", ".join(E(f.label) for f in task.files if f.role != "used")
        nested = "<br>".join(f"{E(r.run_id)} rank {r.rank} <span class='{E(r.status)}'>{E(r.status)}</span>"
                             f"{': ' + _metrics(r) if _metrics(r) else ''}" for r in runs.get(task.task_id, []))
        table.append(f"<tr><td>{E(task.task_id)}</td><td class='{E(task.status)}'>{E(task.status)}</td>"
                     f"<td>{duration}</td><td>{ins}</td><td>{outs}</td><td><code>{E(task.command or '')}</code></td>"
                     f"<td>{nested}</td><td><pre>{E(task.error or '')}</pre></td></tr>")
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src data:\">", f"<title>yprov4ml report: workflow {E(workflow.name or workflow.workflow_id)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>workflow {E(workflow.name or workflow.workflow_id)}</h1>",
             f"<p><span class='{E(workflow.status)}'>{E(workflow.status)}</span> · {E(str(workflow.start_time))} · "
             f"{took} · {len(workflow.tasks)} task(s): " + ", ".join(f"{n} {E(s)}" for s, n in sorted(counts.items()))
             + (f"</p><pre>{E(workflow.error)}</pre>" if workflow.error else "</p>"),
             "<h2>Tasks</h2><table><tr><th>task</th><th>status</th><th>duration (s)</th><th>inputs</th>"
             "<th>outputs</th><th>command</th><th>runs and their key metrics (last)</th><th>error</th></tr>",
             *table, "</table>", "<h2>Picture</h2>", _picture(document.parent, document), "</body></html>"]
    output = Path(output)
    atomic_write_text(output, "\n".join(parts))
    return output
