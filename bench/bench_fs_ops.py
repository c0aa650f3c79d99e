"""File-system metadata requests per rank of a real MPI job, counted with strace.

    python bench/bench_fs_ops.py            # 64 ranks under mpiexec
    python bench/bench_fs_ops.py --ranks 8  # a smaller job

On a parallel file system every open, stat, directory listing, mkdir, rename or unlink is a request to a
shared metadata server; at 65,536 ranks what one rank asks is asked 65,536 times. Each rank runs under
``strace -f`` (its threads and the processes it forks included) and the requests between two markers are
counted: from just before ``start_run`` to just after ``end_run``, so the modules start_run imports, the
package scan, git, the journal, the metric file and the rank's document all count. The baseline, in the
same run: the same program without yprov4ml's calls (the markers alone).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

START, END = "/yprov4ml-bench-start", "/yprov4ml-bench-end"  # stat'ed (and missing): the markers in the trace
# Calls that name a path or list a directory: what reaches a metadata server. fstat and friends on an open
# descriptor are answered by the client; reads and writes of data are not metadata.
METADATA = ("open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat",
            "faccessat2", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
            "readlink", "readlinkat", "getdents64", "symlink", "symlinkat", "link", "linkat", "chmod", "fchmodat",
            "truncate", "utimensat", "execve", "chdir", "statfs")
CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(")


def worker(mode: str, root: str) -> None:
    """One rank: the markers, and between them a run of 100 points (``every``: every rank records; ``rank0``:
    the default, rank 0 alone; ``plain``: nothing)."""
    import mpi4py.MPI  # noqa: F401  (the user's program has MPI up before start_run)

    import yprov4ml

    os.path.exists(START)
    if mode != "plain":
        yprov4ml.start_run("www.example.org", "fsops", root, collect_all_processes=mode == "every")
        for step in range(100):
            yprov4ml.log_metric("loss", 1.0 / (step + 1), yprov4ml.Context.TRAINING, step)
        yprov4ml.end_run()
    os.path.exists(END)


PATH = re.compile(r'"([^"]*)"')
LOCAL = ("/proc/", "/sys/", "/dev/")  # the kernel's own files, on every node: no metadata server answers them


def where(path: str, runs: str) -> str | None:
    """Which part of the file system a request went to; None for the node-local kernel files."""
    if path.startswith(LOCAL) or path in ("/proc", "/sys", "/dev"):
        return None
    if path.startswith(runs):
        return "run directory"
    if any(path.startswith(root) for root in INSTALLED):
        return "Python installation (imports)"
    return "elsewhere (script, working directory, /etc, libraries)"


INSTALLED = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)} | {sys.prefix, sys.base_prefix}
                   | {p for p in sys.path if p and os.path.isdir(p) and p != os.getcwd()})


def count(trace: Path, runs: str) -> collections.Counter:
    """Metadata requests between the markers of one rank's trace, by the part of the file system they reach."""
    found: collections.Counter = collections.Counter()
    inside = False
    listed: dict[str, str | None] = {}  # pid → the part of the directory it opened last (getdents64 reads it)
    for line in trace.read_text(errors="replace").splitlines():
        if START in line:
            inside = True
            continue
        if END in line:
            break
        match = CALL.match(line)
        # newfstatat(fd, "", AT_EMPTY_PATH) is fstat of an open descriptor, not a path's lookup
        if not (inside and match and match.group(1) in METADATA) or '"", ' in line:
            continue
        pid = line.split(None, 1)[0]
        named = PATH.search(line)
        part = where(named.group(1) if named else "", runs) if match.group(1) != "getdents64" else \
            listed.get(pid, "elsewhere (script, working directory, /etc, libraries)")
        if "O_DIRECTORY" in line:
            listed[pid] = part
        if part is not None:
            found[part] += 1
    return found


def job(ranks: int, mode: str) -> list[collections.Counter]:
    """Run the job once under mpiexec, each rank under strace; the counts per rank, in rank order."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("bench_fs_ops needs mpiexec (pip install mpich)")
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp, "traces")
        traces.mkdir()
        rank_trace = f"{traces}/rank${{PMI_RANK}}"
        command = (f"exec strace -f -qq -o {rank_trace} {sys.executable} {__file__} --worker "
                   f"{mode} {tmp}/runs")
        subprocess.run([mpiexec, "-n", str(ranks), "sh", "-c", command], check=True, timeout=1800,
                       env={**os.environ, "YPROV4ML_COLLECTION_TIMEOUT": "600"})
        return [count(traces / f"rank{rank}", f"{tmp}/runs") for rank in range(ranks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=64)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if shutil.which("strace") is None:
        sys.exit("bench_fs_ops needs strace (Debian: apt-get install strace)")
    print(f"machine: {machine()}")
    plain = max(sum(c.values()) for c in job(args.ranks, "plain"))
    for mode, what in (("every", "collect_all_processes=True: every rank records"),
                       ("rank0", "the default: rank 0 records, the others return at once")):
        counts = job(args.ranks, mode)
        totals = [sum(c.values()) for c in counts]
        others = sorted(totals[1:])
        worst = max(range(1, args.ranks), key=lambda r: totals[r])
        print(f"{args.ranks} ranks under mpiexec, {what}; metadata requests from before start_run to after "
              f"end_run (100 points logged), each rank traced with its threads and children:")
        print(f"  rank 0: {totals[0]}; ranks 1..{args.ranks - 1}: median {others[len(others) // 2]}, max "
              f"{others[-1]}; whole job {sum(totals)}; the same program without yprov4ml: {plain} per rank")
        median_rank = sorted(range(1, args.ranks), key=lambda r: totals[r])[(args.ranks - 1) // 2]
        print(f"  rank {median_rank} (the median): " + ", ".join(f"{part} {n}" for part, n in
                                                             counts[median_rank].most_common()))
        print(f"  rank {worst} (the most): " + ", ".join(f"{part} {n}" for part, n in counts[worst].most_common()))
        print("  rank 0: " + ", ".join(f"{part} {n}" for part, n in counts[0].most_common()))

if __name__ == "__main__":
    main()
