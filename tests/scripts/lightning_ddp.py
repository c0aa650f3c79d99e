"""Lightning DDP on CPU (2 processes, gloo) with the yprov4ml logger: one document per rank."""
import sys, torch, lightning as L
from torch.utils.data import DataLoader, TensorDataset
from yprov4ml.integrations.lightning import YProv4MLLogger
class M(L.LightningModule):
    def __init__(self): super().__init__(); self.save_hyperparameters({"lr": 0.05}); self.net = torch.nn.Linear(4, 1)
    def training_step(self, b, i):
        loss = torch.nn.functional.mse_loss(self.net(b[0]), b[1]); self.log("train_loss", loss); return loss
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.05)
x = torch.randn(256, 4); y = x.sum(1, keepdim=True)
logger = YProv4MLLogger(experiment_name="ddp", provenance_save_dir=sys.argv[1], collection_timeout_s=60)
t = L.Trainer(max_epochs=1, strategy="ddp", devices=2, accelerator="cpu", logger=logger, log_every_n_steps=2,
              enable_progress_bar=False, enable_checkpointing=False, default_root_dir=sys.argv[1])
t.fit(M(), DataLoader(TensorDataset(x, y), batch_size=16))
logger.end()
print("RANK", t.global_rank, logger.version, flush=True)
