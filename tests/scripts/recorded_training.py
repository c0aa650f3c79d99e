"""A recording training loop that writes its own ground truth, to be killed by the tests.

    python recorded_training.py SAVE_DIR TRUTH_FILE [--forget-end-run] [--raise-at N] [--user-handler]
                                [--steps N] [--save-after N]

Every yprov4ml call is followed by a line in TRUTH_FILE (flushed), so the test
knows what the library had accepted before the process died.
"""

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import yprov4ml

parser = argparse.ArgumentParser()
parser.add_argument("save_dir")
parser.add_argument("truth")
parser.add_argument("--steps", type=int, default=100_000)
parser.add_argument("--forget-end-run", action="store_true")
parser.add_argument("--raise-at", type=int, default=-1)
parser.add_argument("--user-handler", action="store_true")
parser.add_argument("--save-after", type=int, default=10, help="save_after_n_logs (1: a flush on every point)")
args = parser.parse_args()

if args.user_handler:
    def user_handler(signum, frame):
        Path(args.truth + ".handler").write_text(f"user handler ran for {signum}")
        sys.exit(3)

    signal.signal(signal.SIGTERM, user_handler)

truth = open(args.truth, "a", buffering=1)


def note(**event):
    truth.write(json.dumps(event) + "\n")
    truth.flush()


print("STARTING", flush=True)
run = yprov4ml.start_run("www.example.org", "killme", args.save_dir, save_after_n_logs=args.save_after,
                         flush_interval_s=0.5)
note(kind="run", run_dir=str(run.run_dir))
yprov4ml.log_params({"lr": 0.01, "seed": 7})
note(kind="param", key="lr", value=0.01)
note(kind="param", key="seed", value=7)
checkpoint = Path(args.save_dir) / "checkpoint.bin"
for step in range(args.steps):
    if step == args.raise_at:
        raise RuntimeError(f"crash at step {step}")
    value = 1.0 / (step + 1)
    yprov4ml.log_metric("loss", value, yprov4ml.Context.TRAINING, step)
    note(kind="metric", step=step, value=value, t=time.time())
    if step % 25 == 24:
        checkpoint.write_bytes(step.to_bytes(8, "little") * 64)
        yprov4ml.save_model_version(str(checkpoint), "net", yprov4ml.Context.TRAINING, step)
        note(kind="model", step=step, t=time.time())
    if step == 5:
        print("READY", flush=True)
    time.sleep(0.002)
if not args.forget_end_run:
    yprov4ml.end_run()
note(kind="done")
