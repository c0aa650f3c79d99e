"""Explorer benchmark: the server time of a run's page whose series holds 10^6 points.

    python bench/bench_explorer.py                 # 1,000,000 points
    python bench/bench_explorer.py --points 100000

Target (issue 30): <= 300 ms server time for the run page of a 10^6-point run. Measured against the floor
in the same run: reading the run back (``load_run``, which reads every point) without drawing anything.
The page's time is the server's own (the ``Server-Timing`` header the explorer sends), over 10 requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    import yprov4ml
    from yprov4ml.explorer.server import make_server

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        yprov4ml.start_run("www.example.org", "big", root / "prov")
        for step in range(args.points):
            yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step)
        run_dir = yprov4ml.end_run().parent
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            yprov4ml.load_run(run_dir)
            loads.append(time.perf_counter() - started)
        server = make_server(root, port=0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        page = f"http://127.0.0.1:{server.server_address[1]}/run?dir={run_dir.relative_to(root).as_posix()}"
        server_ms, sizes = [], []
        for _ in range(10):
            with urllib.request.urlopen(page, timeout=120) as answer:
                sizes.append(len(answer.read()))
                server_ms.append(float(answer.headers["Server-Timing"].split("dur=")[1]))
        server.shutdown()
        floor = statistics.median(loads) * 1000
        median = statistics.median(server_ms)
        print(f"run page of a {args.points}-point run: {median:.0f} ms server time median of 10 (max "
              f"{max(server_ms):.0f}; target <= 300 ms), page {sizes[0] / 1024:.0f} KB; load_run alone {floor:.0f} ms "
              f"({median / floor:.2f}x)")


if __name__ == "__main__":
    main()
