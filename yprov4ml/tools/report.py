"""A static, self-contained HTML report of runs: parameters, metric plots, the provenance graph (no network)."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from .compare import compare
from ..storage.files import atomic_write_text


def _svg_of_metric(paths: list[Path], metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import _series, _views, series_xy

    figure, axis = plt.subplots(figsize=(7, 3.2))
    notes = set()
    for label, view in _views(paths):
        found = _series(view, metric, nested=False)  # a sub-context's series has a plot of its own
        data = found[0][1] if found else None
        if data is not None and len(data):
            xs, note = series_xy(data)
            notes.add(note)
            axis.plot(xs, data.values, marker="o" if len(data) == 1 else None, label=label)  # one point shows
    axis.set_title(metric)
    axis.set_xlabel("order of logging (the steps repeat)" if any(notes) else "step")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prologue inside HTML


def _graph_svg(prov_path: Path) -> str:
    from ..prov.picture import run_picture

    dot = shutil.which("dot")
    if dot is None:
        return "<p>No graph picture: Graphviz's <code>dot</code> is not installed (apt-get install graphviz).</p>"
    picture = run_picture([json.loads(prov_path.read_text(encoding="utf-8"))])
    svg = subprocess.run([dot, "-Tsvg"], input=picture.to_dot(), capture_output=True, text=True, check=True).stdout
    svg = re.sub(r"</?a\b[^>]*>", "", svg)  # a report that works offline keeps no links
    return svg[svg.index("<svg"):]


def write_report(paths: Iterable[str | Path], output: str | Path) -> Path:
    """Write one HTML file; everything (plots, graph) is inline SVG, no script, no external resource."""
    comparison = compare(paths)
    runs = comparison.runs
    run_dirs = [r.run_dir for r in runs]
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src data:\">",
             f"<title>yprov4ml report: {html.escape(', '.join(r.run_id for r in runs))}</title>",
             "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
             "th{background:#f3f3f3}.note{color:#a33}svg{max-width:100%;height:auto}</style></head><body>",
             f"<h1>yprov4ml report</h1><p>{len(runs)} run(s) of {html.escape(', '.join(sorted({r.experiment for r in runs})))}</p>"]
    header = "".join(f"<th>{html.escape(r.run_id)}</th>" for r in runs)
    rows = [f"<tr><td>status</td>{''.join(f'<td>{html.escape(r.status)}</td>' for r in runs)}</tr>"]
    params = comparison.params if len(runs) > 1 else {k: [v] for k, v in comparison.same_params.items()}
    for key, values in params.items():
        rows.append(f"<tr><td>{html.escape(key)}</td>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
                    + "</tr>")
    for key, values in comparison.metrics.items():
        rows.append(f"<tr><td>{html.escape(key)} (last)</td>" + "".join(
            f"<td>{'—' if v is None else f'{v:.6g}'}</td>" for v in values) + "</tr>")
    parts.append(f"<h2>Parameters and final metrics</h2><table><tr><th></th>{header}</tr>{''.join(rows)}</table>")
    if len(runs) > 1 and comparison.same_params:
        parts.append("<p>Same in every run: " + html.escape(", ".join(f"{k}={v}" for k, v in
                                                                    comparison.same_params.items())) + "</p>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in comparison.notes]
    parts.append("<h2>Metrics</h2>")
    for name in comparison.metrics:
        parts.append(_svg_of_metric(run_dirs, name))
    parts.append(f"<h2>Provenance of {html.escape(runs[0].run_id)}</h2>")
    parts.append(_graph_svg(runs[0].prov_path))
    parts.append("</body></html>")
    output = Path(output)
    atomic_write_text(output, "\n".join(parts))
    return output
