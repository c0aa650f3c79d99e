"""The calls of upstream's examples/prov4ml_torch.py (3.x), in its forms: indexed datasets, nested contexts, Zarr."""
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import prov4ml
from prov4ml.wrappers.indexed_dataset import IndexedDatasetWrapper
from synthetic import MNIST, transforms

prov4ml.start_run(prov_user_namespace="www.example.org", experiment_name="torch_indexed",
                  provenance_save_dir=sys.argv[1], save_after_n_logs=100, collect_all_processes=True,
                  disable_codecarbon=True, metrics_file_type=prov4ml.MetricsType.ZARR, use_compressor=False)
prov4ml.log_source_code("/Users/someone/yProvML/examples/prov4ml_torch.py")  # another machine's path
prov4ml.log_execution_command("python prov4ml_torch.py")
prov4ml.create_context("TRAINING_LOD2", prov4ml.Context.TRAINING)
prov4ml.create_context("TRAINING_LOD3", prov4ml.Context.TRAINING_LOD2)

model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10), torch.nn.ReLU())
tform = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor()])
prov4ml.log_param("dataset transformation", tform)
train_loader = DataLoader(IndexedDatasetWrapper(Subset(MNIST("data", train=True, transform=tform), range(32))),
                          batch_size=16, shuffle=True)
prov4ml.log_dataset("train_dataset", train_loader)
val_loader = DataLoader(IndexedDatasetWrapper(Subset(MNIST("data", train=False, transform=tform), range(16))),
                        batch_size=16)
prov4ml.log_dataset("val_dataset", val_loader)
optim = torch.optim.Adam(model.parameters(), lr=0.001)
prov4ml.log_param("optimizer", "Adam")
prov4ml.log_param("loss_fn", "MSELoss", prov4ml.Context.TRAINING_LOD2)
for epoch in range(2):
    for indices, (x, y) in train_loader:
        optim.zero_grad()
        loss = F.mse_loss(model(x), F.one_hot(y, 10).float())
        loss.backward()
        optim.step()
        prov4ml.log_metric("MSE_train", loss.item(), context=prov4ml.Contexts.TRAINING, step=epoch)
        prov4ml.log_metric("Indices", indices.tolist(), context=prov4ml.Contexts.TRAINING, step=epoch)
        prov4ml.log_system_metrics(prov4ml.Contexts.TRAINING, step=epoch)
    prov4ml.save_model_version("mnist_model_version", model, prov4ml.Contexts.MODELS, epoch)
    for indices, (x, y) in val_loader:
        prov4ml.log_metric("MSE_val", F.mse_loss(model(x), F.one_hot(y, 10).float()).item(),
                           prov4ml.Contexts.VALIDATION, step=epoch)
prov4ml.log_model("mnist_model_final", model, log_model_layers=True, is_input=False)
prov4ml.end_run(create_graph=True, create_svg=True, crate_ro_crate=True)
