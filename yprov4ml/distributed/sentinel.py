"""The node's sentinel: which rank of a job ended first without end_run, when nothing inside it could say.

``kill -9`` of one rank, a segfault or the OOM killer leaves no trace inside that rank, and the launcher
then ends the others the same way (Hydra sends SIGKILL): every journal just stops. So the first rank of a
node to start a distributed run starts one small stand-alone process (this file, run as a script: it
imports nothing of yprov4ml), in a session of its own so that the launcher's clean-up does not reach it,
and every rank of the node keeps a connection to it open (an abstract Unix socket: no file). A rank that
ends its run says so first; a connection that closes without that word is a rank that died, and the
kernel closes it the moment the process is gone — before the launcher has even noticed. The sentinel
appends each such end, as it sees it, to ``ends/<node>.jsonl`` in the run directory (nothing is written
for a run whose ranks all end cleanly), and ``yprov4ml recover`` names the earliest.

Linux only (abstract sockets); elsewhere, and when it cannot start, the run records as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

ENDS_DIR = "ends"  # in the run directory: one file per node that saw a rank die
LISTEN_FD_VARIABLE = "YPROV4ML_SENTINEL_FD"
IDLE_EXIT_S = 5.0  # with no rank connected (all ended) for this long, the sentinel exits
FIRST_CONNECTION_S = 120.0  # ... or when no rank ever connects
_connection: socket.socket | None = None
_pid = 0


def socket_name(run_id: str, node: str) -> bytes:
    """The abstract socket name of a run's sentinel on a node (hashed: names are limited to 107 bytes)."""
    return b"\0yprov4ml-" + hashlib.sha256(f"{run_id}\0{node}".encode()).hexdigest()[:40].encode()


def watch(run_id: str, node: str, rank: int, run_dir: Path) -> bool:
    """Connect this rank to its node's sentinel (starting it, when it is the node's first); True when watched."""
    global _connection, _pid
    if not sys.platform.startswith("linux"):
        return False
    name = socket_name(run_id, node)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(name)
        listener.listen(socket.SOMAXCONN)
        _start(listener, run_dir, node)
    except OSError:
        pass  # the name is taken: another rank of this node started the sentinel
    finally:
        listener.close()  # the sentinel holds its own copy
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(name)
        connection.sendall(json.dumps({"rank": rank, "pid": os.getpid()}).encode() + b"\n")
    except OSError:
        connection.close()
        return False
    _connection, _pid = connection, os.getpid()
    return True


def ended() -> None:
    """This rank ended its run: tell the sentinel, so that the closing connection is not taken for a death."""
    global _connection
    connection, _connection = _connection, None
    if connection is None or os.getpid() != _pid:
        return
    try:
        connection.sendall(b'{"ended": true}\n')
    except OSError:
        pass
    connection.close()


def forget_after_fork() -> None:
    """In a forked child: close the parent's connection, whose end must mean the parent's end."""
    global _connection
    connection, _connection = _connection, None
    if connection is not None:
        try:
            connection.close()
        except OSError:
            pass


def _start(listener: socket.socket, run_dir: Path, node: str) -> None:
    env = {"PATH": os.environ.get("PATH", ""), LISTEN_FD_VARIABLE: str(listener.fileno())}
    subprocess.Popen([sys.executable, "-I", str(Path(__file__).resolve()), str(run_dir), node],
                     pass_fds=[listener.fileno()], env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")


def _serve(listener: socket.socket, out: Path) -> None:
    """Accept ranks, note each one whose connection closes without its word; exit once all are gone."""
    chosen = selectors.DefaultSelector()
    chosen.register(listener, selectors.EVENT_READ)
    ranks: dict[socket.socket, dict] = {}
    idle_since, limit = time.monotonic(), FIRST_CONNECTION_S
    while ranks or time.monotonic() - idle_since < limit:
        for key, _ in chosen.select(timeout=1.0):
            seen = time.time()  # first: the time the kernel told us of it
            if key.fileobj is listener:
                connection, _ = listener.accept()
                chosen.register(connection, selectors.EVENT_READ)
                ranks[connection] = {"buffer": b""}
                continue
            connection = key.fileobj
            state = ranks[connection]
            data = connection.recv(4096)
            state["buffer"] += data
            if data and len(state["buffer"]) < 65536:
                continue
            chosen.unregister(connection)
            connection.close()
            del ranks[connection]
            _note_end(state["buffer"], seen, out)
            if not ranks:
                idle_since, limit = time.monotonic(), IDLE_EXIT_S


def _note_end(received: bytes, seen: float, out: Path) -> None:
    hello, clean = None, False
    for line in received.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("rank"), int):
            hello = message
        clean = clean or (isinstance(message, dict) and message.get("ended") is True)
    if hello is None or clean:
        return
    record = {"rank": hello["rank"], "pid": hello.get("pid"), "ended_at": seen, "how": "without end_run"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:  # one line per death, as it happens: the launcher may be next
        fh.write(json.dumps(record) + "\n")


def _main(argv: list[str]) -> int:
    run_dir, node = Path(argv[0]), argv[1]
    listener = socket.socket(fileno=int(os.environ[LISTEN_FD_VARIABLE]))
    safe_node = "".join(c if c.isalnum() or c in "-_." else "_" for c in node)[:100] or "node"
    _serve(listener, run_dir / ENDS_DIR / f"{safe_node}.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
