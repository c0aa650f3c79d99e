"""The calls of upstream's examples/prov4ml_lightning.py and prov4ml_MLlogger.py: a Lightning module logging
through the directives, and Lightning's own self.log through upstream's ProvMLLogger joining the script's run."""
import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import yprov4ml
from yprov4ml import ProvMLLogger
from synthetic import MNIST, transforms

yprov4ml.start_run(prov_user_namespace="www.example.org", experiment_name="lightning_calls",
                   provenance_save_dir=sys.argv[1], save_after_n_logs=100)


class MNISTModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, _):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        yprov4ml.log_metric("MSE", loss, yprov4ml.Contexts.TRAINING, step=self.current_epoch)
        self.log("MSE_training", loss, yprov4ml.Contexts.TRAINING)
        return loss

    def validation_step(self, batch, _):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        yprov4ml.log_metric("MSE", loss, yprov4ml.Contexts.VALIDATION, step=self.current_epoch)
        self.log("MSE_validation", loss, yprov4ml.Contexts.VALIDATION)
        return loss

    def test_step(self, batch, _):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        yprov4ml.log_metric("MSE", loss, yprov4ml.Contexts.TESTING, step=self.current_epoch)
        return loss

    def on_train_epoch_end(self):
        yprov4ml.log_metric("epoch", self.current_epoch, yprov4ml.Contexts.TRAINING, step=self.current_epoch)
        yprov4ml.save_model_version(f"model_version_{self.current_epoch}", self, yprov4ml.Contexts.TRAINING,
                                    step=self.current_epoch)
        yprov4ml.log_system_metrics(yprov4ml.Contexts.TRAINING, step=self.current_epoch)
        yprov4ml.log_current_execution_time("train_epoch_time", yprov4ml.Contexts.TRAINING, self.current_epoch)

    def configure_optimizers(self):
        optim = torch.optim.Adam(self.parameters(), lr=0.0002)
        yprov4ml.log_param("optimizer", optim)
        return optim


tform = transforms.Compose([transforms.ToTensor()])
yprov4ml.log_param("dataset_transformation", tform)
train_loader = DataLoader(Subset(MNIST("data", train=True, transform=tform), range(64)), batch_size=16)
val_loader = DataLoader(Subset(MNIST("data", train=True, transform=tform), range(16)), batch_size=16)
yprov4ml.log_dataset("train_dataset", train_loader)
yprov4ml.log_dataset("val_dataset", val_loader)
model = MNISTModel()
trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=[ProvMLLogger()], log_every_n_steps=1,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, train_loader, val_dataloaders=val_loader)
yprov4ml.log_model("model_version_final", model)
test_loader = DataLoader(Subset(MNIST("data", train=False, transform=tform), range(32)), batch_size=16)
yprov4ml.log_dataset("test_dataset", test_loader)
trainer.test(model, test_loader, verbose=False)
yprov4ml.end_run(create_graph=True, create_svg=True, crate_ro_crate=True)
