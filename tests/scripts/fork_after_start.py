"""A process that forks a few milliseconds after start_run, while the run's preparing thread still imports.

    python fork_after_start.py SAVE_DIR DELAY_S
"""

import os
import sys
import time

import yprov4ml

yprov4ml.start_run("www.example.org", "fork-after-start", sys.argv[1])
yprov4ml.log_metric("loss", 1.0, step=0)
time.sleep(float(sys.argv[2]))
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
yprov4ml.log_metric("loss", 0.5, step=1)
yprov4ml.end_run()
