"""The explorer's pages as HTML: runs, a run, a workflow, the lineage of a file. Every value is escaped;
every link into the root is a path relative to it, resolved inside it again when followed."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..collectors.groups import ENERGY, SYSTEM, USER, metric_group
from ..errors import YProvError
from ..prov.reader import load_run
from ..search.lineage import is_sha256, lineage
from ..search.index import refresh
from ..search.query import open_index, search_runs
from ..storage.files import read_json, resolve_inside
from ..storage.layout import rank_documents, rank_of_document
from ..prov.render import NoGraphviz, inline_svg
from . import charts, graphs

MAX_RANKS_DRAWN = 16  # a run's graph draws at most this many ranks; the page says when it leaves some out
E = html.escape


class NotFound(Exception):
    """A page or file that is not there, or not inside the root."""


def url(page: str, **query: Any) -> str:
    """The URL of a page of the explorer with its query (lists repeat their key)."""
    items = [(k, v) for k, v in query.items() if v not in (None, "")]
    flat = [(k, x) for k, v in items for x in (v if isinstance(v, (list, tuple)) else [v])]
    return page + ("?" + urlencode(flat) if flat else "")


def link(page: str, **query: Any) -> str:
    """``url``, escaped for an HTML attribute."""
    return E(url(page, **query))


def layout(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{E(title)} — yProv4ML explorer</title><link rel=\"icon\" href=\"data:,\">"
            "<link rel=\"stylesheet\" href=\"/static/explorer.css\">"
            "<script src=\"/static/explorer.js\" defer></script></head><body>"
            "<nav><a href=\"/\">runs</a> <a href=\"/lineage\">lineage</a></nav>"
            f"<main><h1>{E(title)}</h1>{body}</main></body></html>")


def status(text: str | None) -> str:
    value = str(text or "UNKNOWN")
    return f'<span class="status status-{E(value.lower())}">{E(value)}</span>'


def _value(value: Any) -> str:
    if isinstance(value, float):
        return E(f"{value:.6g}")
    return E("" if value is None else (value if isinstance(value, str) else json.dumps(value, default=str)))


class Site:
    """The pages of one root directory."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def inside(self, relative: str | None) -> Path:
        """A path given in a URL, resolved inside the root; NotFound otherwise (``../``, absolute, links out)."""
        if not relative:
            raise NotFound("no path given")
        found = resolve_inside(self.root, relative)
        if found is None or not found.exists():
            raise NotFound(f"{relative!r} is not inside the explorer's root")
        return found

    def rel(self, path: str | os.PathLike) -> str | None:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    # ------------------------------------------------------------ runs
    def runs(self, expression: str = "", order: str = "") -> str:
        problem, summaries = "", []
        try:
            summaries = search_runs(self.root, expression or None, order_by=[order] if order else None).summaries
        except YProvError as exc:
            problem = f'<pre class="error">{E(str(exc))}</pre>'
        params = sorted({k for s in summaries for k in s.params})[:8]
        metrics = sorted({k for s in summaries for k in s.metrics if metric_group(k.split("@")[0]) == USER})[:8]
        columns = [("run", "attributes.run_id"), ("experiment", "attributes.experiment"),
                   ("status", "attributes.status"), ("start", "attributes.start_time"),
                   ("duration (s)", "attributes.duration"), ("ranks", "attributes.world_size"),
                   *((f"params.{k}", f"params.`{k}`") for k in params),
                   *((k, "metrics.`{}`@`{}`".format(*k.split("@", 1))) for k in metrics)]
        head = "".join(f'<th><a href="{link("/", filter=expression, order=f"{key} DESC" if order == key else key)}">'
                       f"{E(name)}</a></th>" for name, key in columns)
        rows = []
        for s in summaries:
            target = self.rel(s.run_dir)
            name = f'<a href="{link("/run", dir=target)}">{E(s.run_id)}</a>' if target else E(s.run_id)
            cells = [name, E(s.experiment), status(s.status), E((s.start_time or "")[:19].replace("T", " ")),
                     _value(s.duration_s), _value(s.world_size), *(_value(s.params.get(k)) for k in params),
                     *(_value(s.metrics.get(k)) for k in metrics)]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        form = (f'<form class="filter" method="get" action="/"><input name="filter" size="80" '
                f'placeholder="params.lr = \'0.01\' and metrics.loss &lt; 0.1" value="{E(expression)}">'
                f'<input type="hidden" name="order" value="{E(order)}"><button type="submit">filter</button></form>')
        table = (f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
                 if summaries else "<p>no run matches</p>")
        return layout("runs", form + problem + f"<p>{len(summaries)} run(s)</p>" + table + self._workflows())

    def _workflows(self) -> str:
        con = open_index(self.root, None)
        try:
            found = con.execute("SELECT directory, workflow_id, status, start_time FROM workflows "
                                "ORDER BY start_time DESC").fetchall()
        finally:
            con.close()
        if not found:
            return ""
        items = "".join(f'<li><a href="{link("/workflow", dir=self.rel(d))}">{E(w)}</a> {status(s)} '
                        f"{E((t or '')[:19])}</li>" for d, w, s, t in found if self.rel(d) is not None)
        return f"<h2>workflows</h2><ul class=\"workflows\">{items}</ul>"

    # ------------------------------------------------------------ one run
    def run(self, directory: str, rank: int = 0, x_axis: str = "step") -> str:
        run_dir = self.inside(directory)
        view = load_run(run_dir, rank)
        ranks = [rank_of_document(p) for p in rank_documents(run_dir)]
        facts = [("run id", E(view.run_id)), ("experiment", E(view.experiment)), ("status", status(view.status)),
                 ("rank", " ".join(f'<a href="{link("/run", dir=directory, rank=r)}">{r}</a>' if r != rank else
                                   f"<b>{r}</b>" for r in ranks) + f" of {view.world_size}"),
                 ("start", E(str(view.start_time))), ("end", E(str(view.end_time))), ("user", E(view.user)),
                 ("error", E(view.error or ""))]
        body = ["<table class=\"facts\">" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"]
        if view.params:
            body.append("<h2>params</h2><table class=\"params\">" + "".join(
                f"<tr><th>{E(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in sorted(view.params.items())) +
                "</table>")
        other = "time" if x_axis == "step" else "step"
        body.append(f'<p>x axis: {E(x_axis)} · <a href="{link("/run", dir=directory, rank=rank, x=other)}">'
                    f"by {other}</a></p>")
        for group, title in ((USER, "metrics"), (SYSTEM, "system metrics"), (ENERGY, "energy")):
            series = [(k, c, d) for (k, c), d in sorted(view.metrics.items()) if metric_group(k) == group
                      and d.kind == "scalar"]
            if not series:
                continue
            start = min((d.times[0] for _, _, d in series if len(d)), default=0.0)
            drawn = "".join(charts.line_chart(f"{k} ({c})", [t - start for t in d.times] if x_axis == "time"
                                              else d.steps, d.values,
                                              "seconds since the first point" if x_axis == "time" else "step", len(d))
                            for k, c, d in series)
            body.append(f"<h2>{title}</h2><div class=\"charts\">{drawn}</div>" if group == USER else
                        f"<details><summary>{title} ({len(series)})</summary><div class=\"charts\">{drawn}</div>"
                        "</details>")
        body.append(self._files(view, run_dir))
        body.append(self._run_graph(run_dir, view.run_id))
        return layout(f"run {view.run_id}", "".join(body))

    def _files(self, view: Any, run_dir: Path) -> str:
        rows = []
        for kind, items in (("model", view.models), ("artifact", view.artifacts), ("dataset", view.datasets)):
            for item in items:
                place = item.get("prov:location")
                path = resolve_inside(run_dir, place.partition("#")[0]) if isinstance(place, str) else None
                target = self.rel(path) if path is not None and path.is_file() else None
                name = str(item.get("prov:label") or item.get("name") or item.get("label") or "")
                cell = f'<a href="{link("/file", path=target)}">{E(name)}</a>' if target else E(name)
                digest = item.get("sha256")
                lineage_link = f' <a href="{link("/lineage", target=digest)}">lineage</a>' if digest else ""
                rows.append(f"<tr><td>{E(kind)}</td><td>{cell}</td><td><code>{E(str(digest or ''))}</code>"
                            f"{lineage_link}</td><td>{_value(item.get('size_bytes'))}</td></tr>")
        if not rows:
            return ""
        return ("<h2>artifacts, models, datasets</h2><table class=\"files\"><thead><tr><th>kind</th><th>name</th>"
                f"<th>sha256</th><th>bytes</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def _run_graph(self, run_dir: Path, run_id: str) -> str:
        documents = rank_documents(run_dir)
        note = (f"<p>the first {MAX_RANKS_DRAWN} of {len(documents)} ranks drawn</p>"
                if len(documents) > MAX_RANKS_DRAWN else "")
        try:
            picture = inline_svg(graphs.run_dot((read_json(p) for p in documents[:MAX_RANKS_DRAWN]), f"run {run_id}"))
        except NoGraphviz as exc:
            return f'<h2>graph</h2><p class="error">{E(str(exc))}</p>'
        return f'<h2>graph</h2>{note}<div class="graph">{picture}</div>'

    # ------------------------------------------------------------ one workflow
    def workflow(self, directory: str, expanded: set[str]) -> str:
        folder = self.inside(directory)
        refresh(self.root)
        con = open_index(self.root, None)
        try:
            found = con.execute("SELECT id, workflow_id, name, status, start_time, end_time, error FROM workflows "
                                "WHERE directory = ?", (str(folder),)).fetchone()
            if found is None:
                raise NotFound(f"{directory!r} holds no workflow document")
            workflow, name, label, state, start, end, error = found
            tasks = [dict(zip(("task_id", "status", "start_time", "end_time", "duration_s", "error", "command"), row))
                     for row in con.execute("SELECT task_id, status, start_time, end_time, duration_s, error, command "
                                            "FROM tasks WHERE workflow = ? ORDER BY start_time", (workflow,))]
            files = [dict(zip(("task_id", "role", "kind", "label", "location", "sha256"), row))
                     for row in con.execute("SELECT task_id, role, kind, label, location, sha256 FROM files "
                                            "WHERE workflow = ?", (workflow,))]
            runs = self._task_runs(con, workflow, name)
        finally:
            con.close()
        rows = []
        for task in tasks:
            ins = ", ".join(E(f["label"]) for f in files if f["task_id"] == task["task_id"] and f["role"] == "used")
            outs = ", ".join(E(f["label"]) for f in files if f["task_id"] == task["task_id"] and f["role"] != "used")
            nested = " ".join(f'<a href="{link("/run", dir=r["dir"])}">{E(r["run_id"])}</a>'
                              for r in runs.get(task["task_id"], []) if r["dir"])
            rows.append(f'<tr class="task status-row-{E(task["status"].lower())}"><td>{E(task["task_id"])}</td>'
                        f"<td>{status(task['status'])}</td><td>{_value(task['duration_s'])}</td><td>{ins}</td>"
                        f"<td>{outs}</td><td>{nested}</td><td>{E(task['error'] or '')}</td></tr>")
        table = ("<table class=\"tasks\"><thead><tr><th>task</th><th>status</th><th>duration (s)</th><th>inputs</th>"
                 f"<th>outputs</th><th>runs</th><th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
        try:
            picture = inline_svg(graphs.workflow_dot(name, state, tasks, files, runs, expanded))
            view = f'<div class="graph">{picture}</div>'
        except NoGraphviz as exc:
            view = f'<p class="error">{E(str(exc))}</p>'
        attributes = {f"task:{t['task_id']}": {k: v for k, v in t.items() if v is not None} for t in tasks}
        for task_id, items in runs.items():
            for r in items:
                attributes[f"run:{r['run_id']}"] = {"run_id": r["run_id"], "status": r["status"], "task": task_id,
                                                    "ranks": len(r["ranks"])}
                for rank in r["ranks"]:
                    attributes[f"rank:{r['run_id']}:{rank['rank']}"] = rank
        for f in files:
            attributes.setdefault(f"data:{f['label']}", {k: v for k, v in f.items() if v is not None})
        expand_links = {key: url("/workflow", dir=directory, expand=sorted(expanded ^ {key}))
                        for key in attributes if key.startswith(("task:", "run:"))}
        run_pages = {f"run:{r['run_id']}": url("/run", dir=r["dir"]) for items in runs.values() for r in items
                     if r["dir"]}
        data = json.dumps({"attributes": attributes, "expand": expand_links, "open": run_pages,
                           "expanded": sorted(expanded)}, default=str).replace("<", "\\u003c")
        facts = (f"<p>{status(state)} · {E(str(start or '')[:19])} → {E(str(end or '')[:19])}"
                 f"{' · ' + E(error) if error else ''} · {len(tasks)} task(s)</p>")
        panel = '<aside id="node-panel"><p>click a node to see its attributes</p></aside>'
        return layout(f"workflow {label or name}", facts + table + "<h2>graph</h2>" +
                      f'<div class="graph-area">{view}{panel}</div>'
                      f'<script type="application/json" id="graph-data">{data}</script>')

    def _task_runs(self, con: Any, workflow: int, workflow_id: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        rows = con.execute(
            "SELECT t.task_id, r.run_id, r.run_dir, r.rank, r.run_status, r.status, r.host FROM task_runs t JOIN ranks r "
            "ON r.run_id = t.run_id AND r.rank = t.rank AND r.visible = 1 WHERE t.workflow = ? UNION "
            "SELECT r.task_id, r.run_id, r.run_dir, r.rank, r.run_status, r.status, r.host FROM ranks r "
            "WHERE r.visible = 1 AND r.workflow_id = ? AND r.task_id IS NOT NULL ORDER BY 2, 4", (workflow, workflow_id))
        for task_id, run_id, run_dir, rank, run_status, rank_status, host in rows:
            run = out.setdefault(task_id, {}).setdefault(run_id, {
                "run_id": run_id, "status": run_status, "dir": self.rel(run_dir) if Path(run_dir).is_dir() else None,
                "ranks": []})
            if all(r["rank"] != rank for r in run["ranks"]):
                run["ranks"].append({"rank": rank, "status": rank_status, "host": host})
        return {task: list(items.values()) for task, items in out.items()}

    # ------------------------------------------------------------ lineage
    def lineage(self, target: str = "") -> str:
        form = (f'<form class="filter" method="get" action="/lineage"><input name="target" size="80" '
                f'placeholder="a sha256, or a path inside the root" value="{E(target)}">'
                "<button type=\"submit\">lineage</button></form>")
        if not target:
            return layout("lineage", form)
        subject: str | Path = target
        if not is_sha256(target):
            subject = self.inside(target)
        try:
            found = lineage(subject, self.root)
        except YProvError as exc:
            return layout("lineage", form + f'<pre class="error">{E(str(exc))}</pre>')
        touches = "".join(f"<tr><td>{E(t.role)}</td><td>{E(t.activity)} {E(t.name)}</td><td>{status(t.status)}</td>"
                          f"<td>{E(t.kind)} {E(t.label)}</td><td><code>{E(t.location)}</code></td></tr>"
                          for t in found.touches) or "<tr><td colspan=\"5\">nothing under this root touched it</td></tr>"
        parts = [form, f"<p>sha256 <code>{E(found.sha256)}</code></p>",
                 f"<table class=\"touches\"><tbody>{touches}</tbody></table>"]
        for title, items in (("upstream: what it came from", found.upstream),
                             ("downstream: what came from it", found.downstream)):
            if items:
                lis = "".join(f'<li class="depth-{r.depth}"><a href="{link("/lineage", target=r.sha256)}">'
                              f"{E(', '.join(r.labels) or r.sha256[:12])}</a> — {E(r.via)}</li>" for r in items)
                parts.append(f"<h2>{E(title)}</h2><ul class=\"lineage\">{lis}</ul>")
        return layout("lineage", "".join(parts))

