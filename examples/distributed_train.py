"""Data-parallel training under MPI, every rank recording its own provenance.

    mpiexec -n 4 python examples/distributed_train.py --epochs 3
    srun --mpi=pmi2 -n 4 python examples/distributed_train.py      # inside a Slurm allocation

Each rank trains on its shard of a synthetic regression task; gradients are
averaged with an MPI allreduce (mpi4py), so all ranks hold the same model.
yprov4ml records with collect_all_processes=True: one PROV-JSON per rank in one
run directory, and rank 0 writes collection.json linking them. Without MPI
(no mpi4py) each process trains alone but still records its launcher rank.
"""

import argparse
import os
import signal

import torch

import yprov4ml as prov4ml

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--samples", type=int, default=4096)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--save-dir", default=os.environ.get("YPROV4ML_SAVE_DIR", "prov"))
parser.add_argument("--experiment", default="distributed")
parser.add_argument("--fail-rank", type=int, default=-1, help="this rank raises in epoch 1 (to test failures)")
parser.add_argument("--kill-rank", type=int, default=-1, help="this rank is SIGKILLed in epoch 1")
parser.add_argument("--data", help="a .pt file with tensors x and y (default: a synthetic regression task)")
parser.add_argument("--model-out", help="rank 0 saves the trained model's state dict here")
parser.add_argument("--no-allreduce", action="store_true",
                    help="train each shard on its own (an ensemble): ranks never wait for each other")
parser.add_argument("--energy", action="store_true",
                    help="energy and emissions per epoch (codecarbon, offline; measured once per node)")
args = parser.parse_args()

# MPICH's mpiexec -disable-auto-cleanup tells the surviving ranks that a rank died with SIGUSR1, whose
# default action would kill them before their records are written: let them finish instead.
signal.signal(signal.SIGUSR1, signal.SIG_IGN)

try:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
except ImportError:
    comm = None

torch.set_num_threads(1)  # one thread per rank: ranks share the node's cores
run = prov4ml.start_run(prov_user_namespace="www.example.org", experiment_name=args.experiment,
                        provenance_save_dir=args.save_dir, collect_all_processes=True, save_after_n_logs=50,
                        track_energy=args.energy)
rank, world = run.record.info.rank, run.record.info.world_size
prov4ml.log_params({"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "world_size": world})

# The same task on every rank (seed 0), each rank taking every world-th sample.
if args.data:
    tensors = torch.load(args.data)
    x, y = tensors["x"], tensors["y"]
    prov4ml.log_artifact(args.data, is_input=True)
else:
    generator = torch.Generator().manual_seed(0)
    true_w = torch.randn(16, 1, generator=generator)
    x = torch.randn(args.samples, 16, generator=generator)
    y = x @ true_w + 0.05 * torch.randn(args.samples, 1, generator=generator)
shard = torch.utils.data.TensorDataset(x[rank::world], y[rank::world])
loader = torch.utils.data.DataLoader(shard, batch_size=args.batch_size, shuffle=True,
                                     generator=torch.Generator().manual_seed(rank))
prov4ml.log_dataset(loader, f"shard_{rank}")

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
optim = torch.optim.SGD(model.parameters(), lr=args.lr)
step = 0
for epoch in range(args.epochs):
    if epoch == 1 and rank == args.fail_rank:
        raise RuntimeError(f"rank {rank} failed on purpose")
    if epoch == 1 and rank == args.kill_rank:
        os.kill(os.getpid(), 9)
    for xb, yb in loader:
        optim.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        if comm is not None and comm.Get_size() > 1 and not args.no_allreduce:
            for p in model.parameters():  # average gradients over ranks
                comm.Allreduce(MPI.IN_PLACE, p.grad.numpy(), op=MPI.SUM)
                p.grad /= comm.Get_size()
        optim.step()
        prov4ml.log_metric("loss", loss.item(), prov4ml.Context.TRAINING, step)
        step += 1
    prov4ml.log_system_metrics(prov4ml.Context.TRAINING, epoch)
    if args.energy:
        prov4ml.log_carbon_metrics(prov4ml.Context.TRAINING, epoch)
    prov4ml.save_model_version(model, "regressor", prov4ml.Context.TRAINING, epoch)

with torch.no_grad():
    val = torch.nn.functional.mse_loss(model(x[:256]), y[:256]).item()
prov4ml.log_metric("val_loss", val, prov4ml.Context.VALIDATION, args.epochs)
if args.model_out and rank == 0:
    torch.save(model.state_dict(), args.model_out)
    prov4ml.log_model(model, "regressor_final")
prov4ml.end_run(create_card=True)  # model_card.md, on rank 0 once every rank is collected
print(f"rank {rank}/{world}: run {run.run_id} val_loss {val:.4f} -> {run.prov_path}", flush=True)
