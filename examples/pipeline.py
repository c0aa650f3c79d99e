"""A three-step pipeline recorded at both levels: preprocess → train under `mpiexec -n 2` → evaluate.

    python examples/pipeline.py --out pipeline-out

The workflow level (tasks, data, who ran them) is recorded by yprov4wfs_bridge;
the training task launches examples/distributed_train.py on two MPI ranks,
each recording its own yprov4ml document, which attach themselves to the task
through the environment; the evaluation runs yprov4ml in this process. At the
end the bridge writes the multi-level PROV-JSON bundle, the graph picture and
an RO-Crate described with the metadata of examples/yprov4ml.toml, and checks
the crate with roc-validator (offline) at REQUIRED and RECOMMENDED.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import yprov4ml
from yprov4wfs_bridge import Agent, Workflow, build, validate_crate

HERE = Path(__file__).resolve().parent
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="pipeline-out")
parser.add_argument("--ranks", type=int, default=2)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--launcher", choices=["mpiexec", "srun"], default="mpiexec",
                    help="srun: the training runs as a job step of the current Slurm allocation")
args = parser.parse_args()
out = Path(args.out).absolute()
mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

with Workflow("regression-pipeline", directory=out, agents=[Agent("researcher", "A. Researcher")],
              description="Synthetic regression: preprocess, distributed training, evaluation") as wf:
    raw_path = out / "raw.pt"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=generator)
    torch.save({"x": x, "y": x @ torch.randn(16, 1, generator=generator) + 0.05 * torch.randn(2048, 1)}, raw_path)
    raw = wf.data("raw", raw_path)

    with wf.task("preprocess", inputs=[raw], command="standardise the features") as task:
        data = torch.load(raw_path)
        mean, std = data["x"].mean(0), data["x"].std(0)
        torch.save({"x": (data["x"][:1536] - mean) / std, "y": data["y"][:1536]}, out / "train.pt")
        torch.save({"x": (data["x"][1536:] - mean) / std, "y": data["y"][1536:]}, out / "test.pt")
        train_set, test_set = task.output("train_set", out / "train.pt"), task.output("test_set", out / "test.pt")

    launch = ([mpiexec, "-n", str(args.ranks)] if args.launcher == "mpiexec" else
              ["srun", f"--mpi={os.environ.get('SRUN_MPI', 'pmi2')}", *os.environ.get("SRUN_EXTRA", "").split(),
               "-n", str(args.ranks)])
    command = [*launch, sys.executable, str(HERE / "distributed_train.py"),
               "--data", str(out / "train.pt"), "--model-out", str(out / "model.pt"), "--epochs",
               str(args.epochs), "--save-dir", str(out / "prov"), "--experiment", "train"]
    with wf.task("train", inputs=[train_set], command=" ".join(command)) as task:
        subprocess.run(command, check=True, env=task.environment())  # the ranks learn their parent task
        model = task.output("model", out / "model.pt")

    with wf.task("evaluate", inputs=[model, test_set]) as task:
        with yprov4ml.start_run("www.example.org", "evaluate", out / "prov"):  # attaches itself to the task
            net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
            net.load_state_dict(torch.load(out / "model.pt"))
            test = torch.load(out / "test.pt")
            with torch.no_grad():
                mse = torch.nn.functional.mse_loss(net(test["x"]), test["y"]).item()
            yprov4ml.log_metric("test_mse", mse, yprov4ml.Context.EVALUATION, 0)
        (out / "report.txt").write_text(f"test MSE {mse:.4f}\n")
        task.output("report", out / "report.txt")

# The publication metadata (authors, license, publisher...) lies beside this script: the crate is clean at
# RECOMMENDED for the Provenance Run Crate and the WorkflowHub profiles.
result = build(out, metadata=HERE / "yprov4ml.toml")
print(f"bundle: {result.bundle}\ngraph: {result.picture}\ncrate: {result.crate}")
passed = True
for profile in ("provenance-run-crate-0.5", "workflow-ro-crate-1.0"):
    for severity in ("REQUIRED", "RECOMMENDED"):
        report = validate_crate(result.crate, severity, profile)
        passed &= report.passed
        print(f"  {'valid' if report.passed else 'NOT valid'} {profile}, {severity} ({len(report.issues)} issues)")
        for issue in report.issues:
            print(f"    {issue}")
for gap in result.gaps:
    print(f"gap: {gap}")
sys.exit(0 if passed else 1)
