"""A PyTorch Lightning model trained with the yprov4ml logger (CPU, synthetic data).

    python examples/lightning_train.py --epochs 3
"""

import argparse

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from yprov4ml.integrations.lightning import YProv4MLLogger

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--save-dir", default="prov")
args = parser.parse_args()


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


generator = torch.Generator().manual_seed(0)
x = torch.randn(512, 8, generator=generator)
y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(512, 1, generator=generator)
train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32)
val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=64)
logger = YProv4MLLogger(experiment_name="lightning", provenance_save_dir=args.save_dir)
trainer = L.Trainer(max_epochs=args.epochs, logger=logger, accelerator="cpu", log_every_n_steps=4,
                    enable_progress_bar=False, default_root_dir=args.save_dir)
torch.manual_seed(0)
model = Regressor()
trainer.fit(model, train, val)
trainer.test(model, val)
logger.end()
print(f"recorded run {logger.version} in {logger.experiment.run_dir}")
