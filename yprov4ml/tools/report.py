"""A static, self-contained HTML report of runs: parameters, metric plots, the provenance graph (no network)."""

from __future__ import annotations

import html
import io
import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..collectors.groups import GROUPS, USER
from .compare import compare
from ..storage.files import atomic_write_text


def _svg_of_metric(views: list[tuple[str, Any]], metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import LEGEND_POINTS, _series, series_xy, tidy_axes

    figure, axis = plt.subplots(figsize=(7, 3.2))
    notes = set()
    for label, view in views:
        found = _series(view, metric, nested=False)  # a sub-context's series has a plot of its own
        data = found[0][1] if found else None
        if data is not None and len(data):
            xs, note = series_xy(data)
            notes.add(note)
            axis.plot(xs, data.values, marker="o" if len(data) == 1 else None, label=label)  # one point shows
    axis.set_title(metric)
    axis.set_xlabel("order of logging (the steps repeat)" if any(notes) else "step")
    axis.grid(alpha=0.3)
    tidy_axes(axis, integer_x=True)
    axis.legend(fontsize=LEGEND_POINTS)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prologue inside HTML


def _graph_svg(prov_path: Path) -> str:
    from ..prov.picture import run_picture
    from ..prov.render import inline_svg, without_links

    if shutil.which("dot") is None:
        return "<p>No graph picture: Graphviz's <code>dot</code> is not installed (apt-get install graphviz).</p>"
    picture = run_picture([json.loads(prov_path.read_text(encoding="utf-8"))])
    return without_links(inline_svg(picture.to_dot()))


def write_report(paths: Iterable[str | Path], output: str | Path, metrics: Sequence[str] | None = None) -> Path:
    """Write one HTML file; everything (plots, graph) is inline SVG, no script, no external resource.

    Args:
        paths: run directories, or experiment directories holding runs.
        output: the HTML file to write.
        metrics: only the metrics these names or glob patterns match (as ``compare``).

    The user's metrics come first; the system and energy figures follow, each
    group folded (``<details>``), devices the machine lacks left out. One workflow directory (or its
    bundle) gives the workflow's report instead (``workflow_report``).
    """
    from .plot import labelled_views
    from .workflow_report import workflow_document, write_workflow_report

    paths = list(paths)
    if len(paths) == 1 and workflow_document(Path(paths[0])) is not None:
        if metrics:
            raise ValueError("--metric chooses the plots of a report of runs; a workflow's report shows each run's "
                             "key metrics: leave --metric out")
        return write_workflow_report(paths[0], output)

    comparison = compare(paths, metrics=metrics)
    runs = comparison.runs
    views = labelled_views([r.run_dir for r in runs])
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src data:\">",
             f"<title>yprov4ml report: {html.escape(', '.join(r.run_id for r in runs))}</title>",
             "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
             "th{background:#f3f3f3}summary{cursor:pointer;font-weight:bold;margin:1em 0}.note{color:#a33}"
             "svg{max-width:100%;height:auto}</style></head><body>",
             f"<h1>yprov4ml report</h1><p>{len(runs)} run(s) of {html.escape(', '.join(sorted({r.experiment for r in runs})))}</p>"]
    header = "".join(f"<th>{html.escape(r.run_id)}</th>" for r in runs)
    rows = [f"<tr><td>status</td>{''.join(f'<td>{html.escape(r.status)}</td>' for r in runs)}</tr>"]
    params = comparison.params if len(runs) > 1 else {k: [v] for k, v in comparison.same_params.items()}
    for key, values in params.items():
        rows.append(f"<tr><td>{html.escape(key)}</td>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
                    + "</tr>")
    for group in GROUPS:
        if comparison.groups[group] and group != USER:
            rows.append(f"<tr><th colspan='{len(runs) + 1}'>{group} figures</th></tr>")
        for key in comparison.groups[group]:
            rows.append(f"<tr><td>{html.escape(key)} (last)</td>" + "".join(
                f"<td>{'—' if v is None else f'{v:.6g}'}</td>" for v in comparison.metrics[key]) + "</tr>")
    parts.append(f"<h2>Parameters and final metrics</h2><table><tr><th></th>{header}</tr>{''.join(rows)}</table>")
    if len(runs) > 1 and comparison.same_params:
        parts.append("<p>Same in every run: " + html.escape(", ".join(f"{k}={v}" for k, v in
                                                                    comparison.same_params.items())) + "</p>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in comparison.notes]
    parts.append("<h2>Metrics</h2>")
    for group in GROUPS:
        names = comparison.groups[group]
        plots = [_svg_of_metric(views, name) for name in names]
        if group == USER:
            parts += plots
        elif plots:  # a collector's figures: there when wanted, folded so that they do not bury the rest
            parts.append(f"<details class='{group}'><summary>{group} figures ({len(plots)} plots)</summary>"
                         + "".join(plots) + "</details>")
    parts.append(f"<h2>Provenance of {html.escape(runs[0].run_id)}</h2>")
    parts.append(_graph_svg(runs[0].prov_path))
    parts.append("</body></html>")
    output = Path(output)
    atomic_write_text(output, "\n".join(parts))
    return output
