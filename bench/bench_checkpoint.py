"""Checkpoint benchmark: does the training loop wait for a 1 GB checkpoint's sha256?

    python bench/bench_checkpoint.py            # 1 GiB of parameters, 3 alternating pairs
    python bench/bench_checkpoint.py --mb 64    # smaller, for a smoke check

Against the baseline of the same invocation: ``torch.save`` of the same state to the same disk. The
recorded call, ``save_model_version``, writes the same file and returns; its sha256 is computed by a
background thread (target, issue 16: the call costs what torch.save costs, not torch.save plus the hash).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    import torch

    import yprov4ml

    side = int((args.mb * 2**20 / 4) ** 0.5)
    model = torch.nn.Linear(side, side, bias=False)  # float32: side² × 4 bytes
    size_mb = side * side * 4 / 2**20
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        hash_probe = Path(tmp) / "probe.pt"
        torch.save(model.state_dict(), hash_probe)
        t0 = time.perf_counter()
        hashlib.sha256(hash_probe.read_bytes()).hexdigest()
        hash_s = time.perf_counter() - t0
        hash_probe.unlink()
        plain, recorded, digest_after, end_runs = [], [], [], []
        for k in range(args.pairs):
            for record in ((False, True) if k % 2 == 0 else (True, False)):
                if not record:
                    target = Path(tmp) / f"plain{k}.pt"
                    t0 = time.perf_counter()
                    torch.save(model.state_dict(), target)
                    plain.append(time.perf_counter() - t0)
                    target.unlink()
                    continue
                yprov4ml.start_run("www.example.org", "checkpoint", Path(tmp) / "prov")
                t0 = time.perf_counter()
                version = yprov4ml.save_model_version(model, "big", yprov4ml.Context.TRAINING, k)
                recorded.append(time.perf_counter() - t0)
                while version.sha256 is None:  # what the background thread does meanwhile
                    time.sleep(0.005)
                digest_after.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run = yprov4ml.end_run()
                end_runs.append(time.perf_counter() - t0)
                for path in run.parent.rglob("*.pt"):
                    path.unlink()
    p, r = statistics.median(plain), statistics.median(recorded)
    print(f"checkpoint of {size_mb:.0f} MiB; sha256 of it alone takes {hash_s:.2f} s here")
    print(f"torch.save: {p:.2f} s; save_model_version: {r:.2f} s (x{r / p:.2f} torch.save; the loop waited "
          f"{max(0.0, r - p):.2f} s more, against {hash_s:.2f} s for the hash); its sha256 was in the record "
          f"{statistics.median(digest_after):.2f} s after the call; end_run {statistics.median(end_runs):.3f} s "
          f"(medians of {args.pairs})")


if __name__ == "__main__":
    main()
