"""A torchrun worker that starts its run before init_process_group; rank 1 fails on the first attempt."""

import os
import sys

import torch
import torch.distributed as dist

import yprov4ml

save_dir, failing_attempts = sys.argv[1], int(sys.argv[2])
restarts = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
with yprov4ml.start_run(experiment_name="elastic", provenance_save_dir=save_dir, collect_all_processes=True,
                        collection_timeout_s=30):
    # torch 2.13's env:// rendezvous reuses the first attempt's gloo keys in the agent store after a restart
    # (connectFullMesh then dials a dead worker, also without yprov4ml): a prefix of its own per attempt
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False)
    dist.init_process_group("gloo", store=dist.PrefixStore(f"attempt{restarts}", store),
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    yprov4ml.log_metric("rank_sum", total.item(), step=restarts)
    if dist.get_rank() == 1 and restarts < failing_attempts:
        raise RuntimeError(f"rank 1 fails on attempt {restarts + 1}")
    dist.destroy_process_group()  # the end-of-run reports then go through torchrun's agent store
