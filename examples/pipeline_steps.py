"""The steps of the example pipelines (Snakemake, Parsl): make data → preprocess → (train) → evaluate.

Each step is a function, and a command line for workflow managers that run commands:

    python examples/pipeline_steps.py make-data data/raw.pt
    python examples/pipeline_steps.py preprocess data/raw.pt data/train.pt data/test.pt
    python examples/pipeline_steps.py evaluate results/model.pt data/test.pt results/report.txt --save-dir prov

Training is examples/distributed_train.py, under mpiexec or srun. The
evaluation records a yprov4ml run: started inside a workflow job, it attaches
itself to that job's task in the workflow record.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def make_data(raw: str, samples: int = 2048, seed: int = 0) -> None:
    """A synthetic regression task: 16 features, a linear target with noise."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 16, generator=generator)
    y = x @ torch.randn(16, 1, generator=generator) + 0.05 * torch.randn(samples, 1, generator=generator)
    Path(raw).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, raw)


def preprocess(raw: str, train: str, test: str, train_fraction: float = 0.75) -> None:
    """Standardise the features; split into a training and a test set."""
    import torch

    data = torch.load(raw)
    mean, std = data["x"].mean(0), data["x"].std(0)
    cut = int(len(data["x"]) * train_fraction)
    for path, part in ((train, slice(None, cut)), (test, slice(cut, None))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": (data["x"][part] - mean) / std, "y": data["y"][part]}, path)


def evaluate(model: str, test: str, report: str, save_dir: str = "prov") -> float:
    """Test MSE of the trained model, recorded as a yprov4ml run (which finds its workflow task itself)."""
    import torch

    import yprov4ml

    with yprov4ml.start_run("www.example.org", "evaluate", save_dir):
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        net.load_state_dict(torch.load(model))
        data = torch.load(test)
        yprov4ml.log_artifact(test, is_input=True)
        with torch.no_grad():
            mse = torch.nn.functional.mse_loss(net(data["x"]), data["y"]).item()
        yprov4ml.log_metric("test_mse", mse, yprov4ml.Context.EVALUATION, 0)
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(f"test MSE {mse:.4f}\n")
    return mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("make-data").add_argument("raw")
    step = sub.add_parser("preprocess")
    for name in ("raw", "train", "test"):
        step.add_argument(name)
    step = sub.add_parser("evaluate")
    for name in ("model", "test", "report"):
        step.add_argument(name)
    step.add_argument("--save-dir", default="prov")
    args = parser.parse_args()
    if args.step == "make-data":
        make_data(args.raw)
    elif args.step == "preprocess":
        preprocess(args.raw, args.train, args.test)
    else:
        print(f"test MSE {evaluate(args.model, args.test, args.report, args.save_dir):.4f}")


if __name__ == "__main__":
    main()
