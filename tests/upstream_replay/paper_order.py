"""The calls of upstream's notebooks/prov4ml_torch.ipynb: the paper's argument order, tensors as metric values."""
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import prov4ml
from synthetic import MNIST, transforms

prov4ml.start_run(prov_user_namespace="www.example.org", experiment_name="paper_order",
                  provenance_save_dir=sys.argv[1], save_after_n_logs=100)
tform = transforms.Compose([transforms.RandomVerticalFlip(), transforms.ToTensor()])
prov4ml.log_param("dataset transformation", tform)
train_loader = DataLoader(Subset(MNIST("data", train=True, transform=tform), range(32)), batch_size=16)
test_loader = DataLoader(Subset(MNIST("data", train=False, transform=tform), range(16)), batch_size=16)
prov4ml.log_dataset(train_loader, "train_ds")
prov4ml.log_dataset(test_loader, "test_ds")
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
optim = torch.optim.Adam(model.parameters(), lr=0.0002)
prov4ml.log_param("optimizer", "Adam")
for epoch in range(2):
    for x, y in train_loader:
        optim.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optim.step()
        prov4ml.log_metric("MSE_train", loss, context=prov4ml.Context.TRAINING, step=epoch)
    prov4ml.log_carbon_metrics(prov4ml.Context.TRAINING, step=epoch)
    prov4ml.log_system_metrics(prov4ml.Context.TRAINING, step=epoch)
    prov4ml.save_model_version(model, f"mnist_model_version_{epoch}", prov4ml.Context.TRAINING, epoch)
for x, y in test_loader:
    prov4ml.log_metric("MSE_test", F.cross_entropy(model(x), y), prov4ml.Context.EVALUATION, step=epoch)
prov4ml.log_model(model, "mnist_model_final")
prov4ml.end_run(create_graph=True, create_svg=True)
