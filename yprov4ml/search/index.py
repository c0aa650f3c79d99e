"""The run index: one SQLite file over every yprov4ml document under a root directory.

The documents stay the one truth: the index is a cache of what they say, kept in
``ROOT/.yprov4ml/index.sqlite``, deleted and rebuilt at any moment, never needed
to read a run. A refresh reads again only documents whose size or mtime changed
and whose sha256 then differs. Each batch of documents is written in one
transaction (SQLite's WAL journal), so two processes indexing at once, or an
indexer killed half-way, leave an index that holds whole documents only. A
document that cannot be read is listed with its reason, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError, IndexUnavailableError
from ..storage.files import read_json_and_bytes, sha256_of
from ..storage.json_stream import STREAM_BYTES, stream_document
from ..storage.layout import COLLECTION_FILE, RANKS_DIR
from .extract import DocumentRows, RankRows, bundle_rank, extract, placed, time_ms

INDEX_DIR = ".yprov4ml"
INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 3
BATCH = 200  # documents per transaction: a killed indexer loses at most one batch of work, nothing read before
PEEK_BYTES = 4096  # a JSON file whose start does not declare the yprov namespace is no document of ours
_RANK_FILE = re.compile(r"^prov\.rank\d+\.json\Z")
_NOT_DOCUMENTS = {"workflow.json", "imported_from_mlflow.json", "ro-crate-metadata.json"}
_WAIT_S = 60.0  # for another indexer's write transaction
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", INDEX_DIR, "mlruns"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, kind TEXT, size INTEGER,
    mtime_ns INTEGER, sha256 TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS ranks (unit INTEGER PRIMARY KEY, doc INTEGER NOT NULL, run_id TEXT, run_dir TEXT,
    rank INTEGER, world_size INTEGER, experiment TEXT, status TEXT, start_time TEXT, start_ms INTEGER, end_time TEXT,
    end_ms INTEGER, duration_s REAL, user TEXT, host TEXT, error TEXT, task_id TEXT, workflow_id TEXT, source TEXT,
    prov_path TEXT, visible INTEGER DEFAULT 0, lead INTEGER DEFAULT 0, run_status TEXT, params_json TEXT,
    metrics_json TEXT);
CREATE INDEX IF NOT EXISTS ranks_doc ON ranks (doc);
CREATE INDEX IF NOT EXISTS ranks_run ON ranks (run_id, run_dir, rank);
CREATE INDEX IF NOT EXISTS ranks_lead ON ranks (lead);
CREATE TABLE IF NOT EXISTS params (doc INTEGER, unit INTEGER, key TEXT, text TEXT, number REAL);
CREATE INDEX IF NOT EXISTS params_unit ON params (unit, key);
CREATE TABLE IF NOT EXISTS metrics (doc INTEGER, unit INTEGER, key TEXT, context TEXT, last REAL, min REAL,
    max REAL, count INTEGER);
CREATE INDEX IF NOT EXISTS metrics_unit ON metrics (unit, key);
CREATE TABLE IF NOT EXISTS contexts (doc INTEGER, unit INTEGER, name TEXT);
CREATE INDEX IF NOT EXISTS contexts_unit ON contexts (unit);
CREATE TABLE IF NOT EXISTS tags (doc INTEGER, unit INTEGER, key TEXT, text TEXT);
CREATE INDEX IF NOT EXISTS tags_unit ON tags (unit, key);
CREATE TABLE IF NOT EXISTS files (doc INTEGER, unit INTEGER, workflow INTEGER, task_id TEXT, role TEXT, kind TEXT,
    label TEXT, location TEXT, sha256 TEXT, entity TEXT);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha256);
CREATE INDEX IF NOT EXISTS files_unit ON files (unit);
CREATE INDEX IF NOT EXISTS files_task ON files (workflow, task_id);
CREATE TABLE IF NOT EXISTS derivations (doc INTEGER, unit INTEGER, derived TEXT, source TEXT);
CREATE INDEX IF NOT EXISTS derivations_unit ON derivations (unit);
CREATE TABLE IF NOT EXISTS collections (doc INTEGER, run_id TEXT, run_dir TEXT, status TEXT, world_size INTEGER,
    ranks_recorded INTEGER, missing_ranks TEXT, nodes TEXT);
CREATE INDEX IF NOT EXISTS collections_run ON collections (run_id, run_dir);
CREATE TABLE IF NOT EXISTS workflows (id INTEGER PRIMARY KEY, doc INTEGER, workflow_id TEXT, name TEXT, status TEXT,
    start_time TEXT, end_time TEXT, error TEXT, directory TEXT);
CREATE TABLE IF NOT EXISTS tasks (doc INTEGER, workflow INTEGER, task_id TEXT, label TEXT, status TEXT,
    start_time TEXT, end_time TEXT, duration_s REAL, error TEXT, command TEXT);
CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow, task_id);
CREATE TABLE IF NOT EXISTS task_runs (doc INTEGER, workflow INTEGER, task_id TEXT, run_id TEXT, run_dir TEXT,
    rank INTEGER);
CREATE INDEX IF NOT EXISTS task_runs_run ON task_runs (run_id);
"""
_OWNED = ("ranks", "params", "metrics", "contexts", "tags", "files", "derivations", "collections", "workflows",
          "tasks", "task_runs")


@dataclass
class IndexReport:
    """What one refresh did."""
    index_path: Path
    documents: int = 0  # documents of ours under the root
    read: int = 0  # read again (new or changed)
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # every unreadable document, with why
    seconds: float = 0.0

    def summary(self) -> str:
        text = (f"{self.documents} document(s) indexed in {self.index_path}: {self.read} read, {self.unchanged} "
                f"unchanged, {self.removed} removed ({self.seconds:.2f} s)")
        if self.failed:
            text += f"; {len(self.failed)} could not be read:\n" + "\n".join(f"  {p}: {e}" for p, e in self.failed)
        return text


def _prepare(con: sqlite3.Connection) -> None:
    """WAL mode, then the schema of this version, in one write transaction (an older index is dropped: a cache)."""
    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # WAL keeps committed batches whole on a crash of the process
    if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    con.execute("BEGIN IMMEDIATE")
    if con.execute("PRAGMA user_version").fetchone()[0] not in (0, SCHEMA_VERSION):
        for table in (*_OWNED, "documents"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in filter(str.strip, _SCHEMA.split(";")):
        con.execute(statement)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    con.execute("COMMIT")


def default_index_path(root: Path) -> Path:
    """``ROOT/.yprov4ml/index.sqlite``."""
    return root / INDEX_DIR / INDEX_FILE


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode that waits for another writer instead of failing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=_WAIT_S, isolation_level=None)
        deadline = time.monotonic() + _WAIT_S
        while True:
            try:
                _prepare(con)
                return con
            except sqlite3.OperationalError as exc:
                # Two processes opening a new index both switch it to WAL; sqlite answers the loser "locked" at
                # once, without its busy handler, so the wait for the other is ours.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    con.close()
                    raise
                if con.in_transaction:
                    con.execute("ROLLBACK")
                time.sleep(0.05)
    except (sqlite3.Error, OSError) as exc:
        raise IndexUnavailableError(f"cannot open the run index {path} ({exc}); give another place for it "
                          "(--index PATH, or index_path=...)") from None


def candidate_documents(root: Path) -> Iterator[Path]:
    """Every file under ``root`` that may be a document of ours. A run directory's subfolders (artifacts,
    models, source snapshots) and RO-Crates (copies of documents) are not entered."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        names = {e.name for e in entries}
        if "ro-crate-metadata.json" in names and folder != root:
            continue
        run_dir = any(_RANK_FILE.match(n) for n in names)
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if (not run_dir and name not in _SKIP_DIRS and not name.startswith(".")) or \
                        (run_dir and name == RANKS_DIR):  # the ranks beyond the first thousand
                    stack.append(Path(entry.path))
            elif name.endswith(".json") and name not in _NOT_DOCUMENTS and entry.is_file(follow_symlinks=False):
                if name == "workflow.prov.json" and "bundle.prov.json" in names:
                    continue  # the bundle holds the workflow level and its runs
                yield Path(entry.path)


def _is_ours(path: Path) -> bool:
    """A rank document or collection by its name, another JSON file by the namespace its start declares."""
    if _RANK_FILE.match(path.name) or path.name == COLLECTION_FILE:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(PEEK_BYTES)
    except OSError:
        return False
    return b'"prefix"' in head and b"w3id.org/yprov4ml/ns#" in head


@dataclass
class _Read:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    rows: DocumentRows | None
    error: str | None
    kind: str


def refresh(root: str | os.PathLike, index_path: str | os.PathLike | None = None) -> IndexReport:
    """Bring the index of ``root`` up to date with its documents; what was read, kept and removed."""
    started = time.monotonic()
    root = Path(root).resolve()
    if not root.is_dir():
        raise DocumentError(f"{root} is not a directory: index a folder that holds runs or workflows")
    path = Path(index_path) if index_path else default_index_path(root)
    con = connect(path)
    try:
        report = IndexReport(path)
        known = {row[0]: row[1:] for row in con.execute("SELECT path, size, mtime_ns, sha256, kind FROM documents")}
        seen: set[str] = set()
        pending: list[_Read] = []
        for candidate in candidate_documents(root):
            key = str(candidate)
            try:
                stat = candidate.stat()
            except OSError:
                continue
            before = known.get(key)
            seen.add(key)
            if before is not None and before[0] == stat.st_size and before[1] == stat.st_mtime_ns:
                if before[3] != "other":
                    report.unchanged += 1
                continue
            pending.append(_read(candidate, stat, before))
            if len(pending) >= BATCH:
                _write(con, pending, report)
                pending = []
        _write(con, pending, report)
        gone = [p for p in known if p not in seen]
        if gone:
            con.execute("BEGIN IMMEDIATE")
            for doc_path in gone:
                _forget(con, doc_path)
            con.execute("COMMIT")
            report.removed = len(gone)
        if report.read or report.removed:
            _mark_leads(con)
        report.documents = con.execute("SELECT COUNT(*) FROM documents WHERE kind != 'other'").fetchone()[0]
        report.failed = [tuple(r) for r in con.execute(
            "SELECT path, error FROM documents WHERE error IS NOT NULL ORDER BY path")]
    finally:
        con.close()
    report.seconds = time.monotonic() - started
    return report


def _read(candidate: Path, stat: os.stat_result, before: tuple | None) -> _Read:
    """Parse one changed document (outside any transaction, so that a writer holds the lock briefly)."""
    if not _is_ours(candidate):
        return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, None, None, None, "other")
    try:
        if stat.st_size > STREAM_BYTES:
            if before is not None and before[2] == sha256_of(candidate):  # touched, not changed
                return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, before[2], None, None, before[3])
            rows, digest = _streamed(candidate)
            return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, digest, rows, None, rows.kind)
        data, raw = read_json_and_bytes(candidate)
        digest = hashlib.sha256(raw).hexdigest()
        if before is not None and before[2] == digest:  # touched, not changed
            return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, digest, None, None, before[3])
        rows = extract(candidate, data)
        return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, digest, rows, None, rows.kind)
    except (DocumentError, OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        return _Read(str(candidate), stat.st_size, stat.st_mtime_ns, None, None,
                     str(exc).replace(str(candidate) + ": ", ""), "unreadable")


def _streamed(candidate: Path) -> tuple[DocumentRows, str]:
    """A large document's rows, its bundles read one at a time (``stream``)."""
    nested: list = []

    def keep(identifier: str, bundle: object) -> None:
        found = bundle_rank(candidate, identifier, bundle)
        if found is not None:
            nested.append(found)

    top, digest = stream_document(candidate, keep)
    ranks = placed(candidate, top, nested) if "bundle" in top else None
    return extract(candidate, top, ranks), digest


def _write(con: sqlite3.Connection, batch: list[_Read], report: IndexReport) -> None:
    if not batch:
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        for item in batch:
            if item.kind != "other":
                report.read += 1
            if item.rows is None and item.error is None and item.sha256 is not None:  # same bytes: the stat only
                con.execute("UPDATE documents SET size=?, mtime_ns=? WHERE path=?", (item.size, item.mtime_ns, item.path))
                continue
            _forget(con, item.path)
            doc = con.execute("INSERT INTO documents (path, kind, size, mtime_ns, sha256, error) VALUES (?,?,?,?,?,?)",
                              (item.path, item.kind, item.size, item.mtime_ns, item.sha256, item.error)).lastrowid
            if item.rows is not None:
                _insert(con, doc, item.rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _forget(con: sqlite3.Connection, doc_path: str) -> None:
    found = con.execute("SELECT id FROM documents WHERE path=?", (doc_path,)).fetchone()
    if found is None:
        return
    for table in _OWNED:
        con.execute(f"DELETE FROM {table} WHERE doc=?", found)
    con.execute("DELETE FROM documents WHERE id=?", found)


def _insert(con: sqlite3.Connection, doc: int, rows: DocumentRows) -> None:
    for rank in rows.ranks:
        _insert_rank(con, doc, rank)
    for c in rows.collections:
        con.execute("INSERT INTO collections VALUES (?,?,?,?,?,?,?,?)", (doc, c.run_id, c.run_dir, c.status,
                                                                        c.world_size, c.ranks_recorded,
                                                                        c.missing_ranks, c.nodes))
    for w in rows.workflows:
        workflow = con.execute("INSERT INTO workflows (doc, workflow_id, name, status, start_time, end_time, error, "
                               "directory) VALUES (?,?,?,?,?,?,?,?)",
                               (doc, w.workflow_id, w.name, w.status, w.start_time, w.end_time, w.error,
                                w.directory)).lastrowid
        for t in w.tasks:
            start, end = time_ms(t.start_time), time_ms(t.end_time)
            con.execute("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (doc, workflow, t.task_id, t.label, t.status, t.start_time, t.end_time,
                         (end - start) / 1000 if start is not None and end is not None else None, t.error, t.command))
            con.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                            [(doc, None, workflow, t.task_id, f.role, f.kind, f.label, f.location, f.sha256, f.entity)
                             for f in t.files])
            con.executemany("INSERT INTO task_runs VALUES (?,?,?,?,?,?)",
                            [(doc, workflow, t.task_id, run_id, run_dir, rank) for run_id, run_dir, rank in t.runs])


def _insert_rank(con: sqlite3.Connection, doc: int, r: RankRows) -> None:
    start, end = time_ms(r.start_time), time_ms(r.end_time)
    unit = con.execute(
        "INSERT INTO ranks (doc, run_id, run_dir, rank, world_size, experiment, status, start_time, start_ms, "
        "end_time, end_ms, duration_s, user, host, error, task_id, workflow_id, source, prov_path, params_json, "
        "metrics_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (doc, r.run_id, r.run_dir, r.rank, r.world_size, r.experiment, r.status, r.start_time, start, r.end_time, end,
         (end - start) / 1000 if start is not None and end is not None else None, r.user, r.host, r.error, r.task_id,
         r.workflow_id, r.source, r.prov_path,
         # what a search shows of each run, ready to show: thousands of runs are listed without a join
         json.dumps(dict(sorted(r.values.items())), default=str),
         json.dumps({f"{k}@{c}": last for k, c, last, *_ in sorted(r.metrics)}))).lastrowid
    con.executemany("INSERT INTO params VALUES (?,?,?,?,?)", [(doc, unit, *p) for p in r.params])
    con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?,?)", [(doc, unit, *m) for m in r.metrics])
    con.executemany("INSERT INTO contexts VALUES (?,?,?)", [(doc, unit, name) for name in r.contexts])
    con.executemany("INSERT INTO tags VALUES (?,?,?,?)", [(doc, unit, *t) for t in r.tags])
    con.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(doc, unit, None, None, f.role, f.kind, f.label, f.location, f.sha256, f.entity) for f in r.files])
    con.executemany("INSERT INTO derivations VALUES (?,?,?,?)", [(doc, unit, *d) for d in r.derivations])


def _mark_leads(con: sqlite3.Connection) -> None:
    """One row per (run, rank) is visible — its own document before a copy in a container — and the lowest
    visible rank of each run leads it: the run's params and metrics are its lead rank's."""
    con.execute("BEGIN IMMEDIATE")
    con.execute("""UPDATE ranks SET visible = CASE
        WHEN source = 'rank' THEN 1
        WHEN EXISTS (SELECT 1 FROM ranks o WHERE o.run_id = ranks.run_id AND o.run_dir = ranks.run_dir
                     AND o.rank = ranks.rank AND (o.source = 'rank' OR o.unit < ranks.unit)) THEN 0
        ELSE 1 END""")
    con.execute("""UPDATE ranks SET lead = (visible = 1 AND NOT EXISTS (SELECT 1 FROM ranks o
        WHERE o.visible = 1 AND o.run_id = ranks.run_id AND o.run_dir = ranks.run_dir AND o.rank < ranks.rank))""")
    # a distributed run's status is its collection's (every rank's outcome), else its lead rank's
    con.execute("""UPDATE ranks SET run_status = COALESCE((SELECT c.status FROM collections c
        WHERE c.run_id = ranks.run_id AND c.run_dir = ranks.run_dir AND c.status != '' LIMIT 1), status)""")
    con.execute("COMMIT")


def as_json(report: IndexReport) -> str:
    """The report as one JSON object (``yprov4ml index --json``)."""
    return json.dumps({"index": str(report.index_path), "documents": report.documents, "read": report.read,
                       "unchanged": report.unchanged, "removed": report.removed, "seconds": report.seconds,
                       "failed": [{"path": p, "error": e} for p, e in report.failed]})
