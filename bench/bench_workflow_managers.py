"""What `snakemake --logger yprov4wfs` costs: a workflow of 200 trivial jobs, with and without the plug-in.

    python bench/bench_workflow_managers.py [--jobs 200] [--pairs 5]

Each pair runs the same workflow twice from scratch (fresh working directory), once plain and once with
the plug-in, in alternating order; the overhead is the median of the paired wall-time ratios, the whole
command (Snakemake's start, its 200 jobs, and the plug-in's record, bundle, graph and crate at the end).
Also: the same for Parsl (200 python_app calls on a local HighThroughputExecutor, with and without
``record(...)``), and where the plug-in's own time goes (the end: hashing waits, bundle, graph, crate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

BIN = Path(sys.executable).parent
SNAKEFILE = """
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule one:
    output: "out/{{i}}.txt"
    shell: "echo {{wildcards.i}} > {{output}}"
"""
PARSL_PARTS: list[tuple[bool, float, float]] = []  # (recorded?, until the last result, Parsl's cleanup)
PARSL_SCRIPT = """
import sys, time
from pathlib import Path
import parsl
from parsl.app.app import python_app
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

@python_app
def one(i, outputs=()):
    with open(outputs[0].filepath, "w") as fh:
        fh.write(str(i))

out, jobs, hooked = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
(out / "out").mkdir(parents=True, exist_ok=True)
config = Config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2,
                                                  provider=LocalProvider(init_blocks=1, max_blocks=1))],
                run_dir=str(out / "runinfo"))
started = time.perf_counter()
with parsl.load(config):
    if hooked:
        from yprov4wfs_bridge.managers.parsl import record
        hook = record(out / "provenance", "bench")
    futures = [one(i, outputs=[File(str(out / "out" / f"{i}.txt"))]) for i in range(jobs)]
    for f in futures:
        f.result()
    ran = time.perf_counter() - started
print(time.perf_counter() - started, ran)  # whole, and before Parsl's cleanup (where the record is built)
"""


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def snakemake_once(root: Path, jobs: int, hooked: bool) -> float:
    work = Path(tempfile.mkdtemp(dir=root))
    (work / "Snakefile").write_text(SNAKEFILE.format(jobs=jobs))
    command = [str(BIN / "snakemake"), "-s", str(work / "Snakefile"), "-d", str(work), "--cores", "2", "--quiet",
               "all"]
    if hooked:
        command += ["--logger", "yprov4wfs", "--logger-yprov4wfs-directory", str(work / "provenance")]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=environment())
    elapsed = time.perf_counter() - started
    if hooked:
        record = json.loads((work / "provenance" / "workflow.json").read_text())
        assert record["status"] == "FINISHED" and len(record["tasks"]) == jobs, record["status"]
    shutil.rmtree(work)
    return elapsed


def parsl_once(root: Path, jobs: int, hooked: bool) -> float:
    work = Path(tempfile.mkdtemp(dir=root))
    script = work / "bench_parsl.py"
    script.write_text(PARSL_SCRIPT)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), str(work), str(jobs), "1" if hooked else "0"], check=True,
                          capture_output=True, env=environment(), cwd=work, text=True)
    elapsed = time.perf_counter() - started
    if hooked:
        assert len(json.loads((work / "provenance" / "workflow.json").read_text())["tasks"]) == jobs
    whole, ran = (float(x) for x in done.stdout.split()[-2:])
    PARSL_PARTS.append((hooked, ran, whole - ran))
    shutil.rmtree(work)
    return elapsed


def paired(name: str, once, root: Path, jobs: int, pairs: int) -> None:
    plain, hooked, ratios = [], [], []
    for n in range(pairs):
        order = (False, True) if n % 2 == 0 else (True, False)  # alternate which goes first
        times = {flag: once(root, jobs, flag) for flag in order}
        plain.append(times[False])
        hooked.append(times[True])
        ratios.append(times[True] / times[False] - 1)
    ratios.sort()
    print(f"{name}, {jobs} trivial jobs, {pairs} alternating pairs: plain {statistics.median(plain):.2f} s, "
          f"recorded {statistics.median(hooked):.2f} s (medians); overhead {100 * statistics.median(ratios):.1f} % "
          f"(median of paired ratios; range {100 * ratios[0]:.1f} .. {100 * ratios[-1]:.1f} %)")


def end_cost(root: Path, jobs: int) -> None:
    """Where the plug-in's time goes at the end: the build of bundle, graph and crate, from the journal."""
    from yprov4wfs_bridge import build

    work = Path(tempfile.mkdtemp(dir=root))
    (work / "Snakefile").write_text(SNAKEFILE.format(jobs=jobs))
    subprocess.run([str(BIN / "snakemake"), "-s", str(work / "Snakefile"), "-d", str(work), "--cores", "2",
                    "--quiet", "all", "--logger", "yprov4wfs", "--logger-yprov4wfs-directory",
                    str(work / "provenance")], check=True, capture_output=True, env=environment())
    events = sum(1 for _ in open(work / "provenance" / "events.jsonl"))
    for svg, crate in ((True, True), (False, True), (False, False)):
        started = time.perf_counter()
        build(work / "provenance", svg=svg, crate=crate)
        print(f"  the end, rebuilt from the journal ({events} events): {time.perf_counter() - started:.2f} s "
              f"(svg {'yes' if svg else 'no'}, crate {'yes' if crate else 'no'})")
    shutil.rmtree(work)


def parsl_parts() -> None:
    """Where the Parsl hook's time goes: while tasks run, and at cleanup (where the record is built)."""
    for part, index in (("until the last result", 1), ("Parsl's cleanup", 2)):
        plain = statistics.median(p[index] for p in PARSL_PARTS if not p[0])
        hooked = statistics.median(p[index] for p in PARSL_PARTS if p[0])
        print(f"  {part}: plain {plain:.2f} s, recorded {hooked:.2f} s (medians)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--no-parsl", action="store_true")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paired("snakemake --logger yprov4wfs", snakemake_once, root, args.jobs, args.pairs)
        end_cost(root, args.jobs)
        if not args.no_parsl:
            paired("parsl record(...)", parsl_once, root, args.jobs, args.pairs)
            parsl_parts()


if __name__ == "__main__":
    main()
