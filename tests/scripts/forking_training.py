"""A run whose process forks: a plain child that exits normally, and a multiprocessing worker that logs.

    python forking_training.py SAVE_DIR OUT_JSON
"""

import json
import multiprocessing
import os
import sys

import yprov4ml


def worker_logs(_: int) -> str:
    try:
        yprov4ml.log_metric("worker_loss", 0.5)
    except yprov4ml.YProvError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


run = yprov4ml.start_run("www.example.org", "forks", sys.argv[1], save_after_n_logs=2, flush_interval_s=0.1)
for step in range(5):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
child = os.fork()
if child == 0:
    try:
        yprov4ml.log_metric("loss", 99.0, step=99)
        message = "accepted"
    except yprov4ml.YProvError as exc:
        message = f"{type(exc).__name__}: {exc}"
    with open(sys.argv[2] + ".child", "w") as fh:
        fh.write(message)
    sys.exit(0)  # a normal exit: atexit runs in the child
os.waitpid(child, 0)
with multiprocessing.get_context("fork").Pool(2) as pool:
    worker_messages = pool.map(worker_logs, range(2))
for step in range(5, 15):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
path = yprov4ml.end_run()
with open(sys.argv[2], "w") as fh:
    json.dump({"run_dir": str(run.run_dir), "workers": worker_messages}, fh)
