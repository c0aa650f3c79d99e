"""preprocess → train (two MPI ranks, a bash_app) → evaluate, as a Parsl script recorded at both levels.

    python examples/parsl_pipeline.py --out parsl-out                  # local HighThroughputExecutor
    python examples/parsl_pipeline.py --out parsl-out --slurm          # workers in Slurm jobs (SlurmProvider)

The one line that records it is ``record(...)`` after ``parsl.load``: every app
call becomes a task of the workflow record, with its File inputs and outputs;
the yprov4ml runs of the training (each MPI rank) and of the evaluation attach
themselves to their tasks. When Parsl cleans up, the record, the multi-level
bundle, the graph and the RO-Crate (with examples/yprov4ml.toml's metadata) are
written into ``OUT/provenance``.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

import parsl
from parsl.app.app import bash_app, python_app
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider, SlurmProvider

from yprov4wfs_bridge.managers.parsl import record

HERE = Path(__file__).resolve().parent


@python_app
def make_data(steps: str, outputs=()):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_steps", steps)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_data(outputs[0].filepath)


@python_app
def preprocess(steps: str, inputs=(), outputs=()):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_steps", steps)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.preprocess(inputs[0].filepath, outputs[0].filepath, outputs[1].filepath)


@bash_app
def train(launch: str, python: str, script: str, epochs: int, save_dir: str, inputs=(), outputs=(),
          stdout=None, stderr=None):
    return (f"{launch} {python} {script} --data {inputs[0].filepath} --model-out {outputs[0].filepath} "
            f"--epochs {epochs} --save-dir {save_dir} --experiment train")


@python_app
def evaluate(steps: str, save_dir: str, inputs=(), outputs=()):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_steps", steps)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate(inputs[0].filepath, inputs[1].filepath, outputs[0].filepath, save_dir)


def config(args: argparse.Namespace) -> Config:
    if args.slurm:
        provider = SlurmProvider(partition=args.partition, nodes_per_block=1, init_blocks=1, max_blocks=1,
                                 walltime="00:10:00", launcher=parsl.launchers.SimpleLauncher(),
                                 worker_init=f"export PATH={Path(sys.executable).parent}:$PATH",
                                 exclusive=False, cmd_timeout=60)
    else:
        provider = LocalProvider(init_blocks=1, max_blocks=1)
    return Config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2, provider=provider,
                                                    cores_per_worker=1)],
                  run_dir=str(args.out / "runinfo"), retries=args.retries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("parsl-out"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--launch", default=None, help="the training's launcher (default: mpiexec -n 2; "
                        "with --slurm: srun --mpi=pmi2 -n 2)")
    parser.add_argument("--slurm", action="store_true", help="run the workers in a Slurm job")
    parser.add_argument("--partition", default=os.environ.get("SLURM_PARTITION", "debug"))
    parser.add_argument("--retries", type=int, default=0)
    args = parser.parse_args()
    args.out = args.out.absolute()
    for folder in ("data", "results", "logs"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    launch = args.launch or ("srun --mpi=pmi2 -n 2" if args.slurm else
                             f"{shutil.which('mpiexec', path=str(Path(sys.executable).parent)) or 'mpiexec'} -n 2")
    steps, prov = str(HERE / "pipeline_steps.py"), str(args.out / "prov")
    os.chdir(args.out)  # data paths are relative to the workflow's directory

    with parsl.load(config(args)):
        recorder = record("provenance", "parsl-pipeline", metadata=HERE / "yprov4ml.toml")
        raw = make_data(steps, outputs=[File(str(args.out / "data/raw.pt"))])
        split = preprocess(steps, inputs=[raw.outputs[0]],
                           outputs=[File(str(args.out / "data/train.pt")), File(str(args.out / "data/test.pt"))])
        model = train(launch, sys.executable, str(HERE / "distributed_train.py"), args.epochs, prov,
                      inputs=[split.outputs[0]], outputs=[File(str(args.out / "results/model.pt"))],
                      stdout=str(args.out / "logs/train.out"), stderr=str(args.out / "logs/train.err"))
        report = evaluate(steps, prov, inputs=[model.outputs[0], split.outputs[1]],
                          outputs=[File(str(args.out / "results/report.txt"))])
        try:
            print(f"test MSE {report.result():.4f}")
        except Exception as exc:  # the record says which task failed; the crate is written all the same
            print(f"the pipeline failed: {exc}", file=sys.stderr)
    result = recorder.result
    print(f"bundle: {result.bundle}\ngraph: {result.picture}\ncrate: {result.crate}")
    for gap in result.gaps:
        print(f"gap: {gap}")
    return 0 if recorder.recorder.manifest["status"] == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
