"""The calls of upstream's examples/prov4ml_logger.py: training logged through the itwinai logger alone."""
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import yprov4ml
from synthetic import MNIST, transforms

logger = yprov4ml.ProvMLItwinAILogger(prov_user_namespace="www.example.org", experiment_name="itwinai_calls",
                                      provenance_save_dir=sys.argv[1], save_after_n_logs=100, log_on_workers=0)
logger.create_logger_context(rank=0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
tform = transforms.Compose([transforms.ToTensor()])
logger.save_hyperparameters({"dataset transformation": tform})
train_loader = DataLoader(Subset(MNIST("data", train=True, transform=tform), range(32)), batch_size=16)
logger.save_hyperparameters({"train_dataset": train_loader})
test_loader = DataLoader(Subset(MNIST("data", train=False, transform=tform), range(16)), batch_size=16)
logger.save_hyperparameters({"test_dataset": test_loader})
optim = torch.optim.Adam(model.parameters(), lr=0.0002)
logger.save_hyperparameters({"optimizer": optim})
for epoch in range(2):
    for x, y in train_loader:
        optim.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optim.step()
        logger.log(item=loss.item(), identifier="MSE_train", kind="metric", context=yprov4ml.Contexts.TRAINING,
                   step=epoch)
    logger.log(item=epoch, identifier="epoch", kind="carbon", context=yprov4ml.Contexts.TRAINING, step=epoch)
    logger.log(item=epoch, identifier="epoch", kind="system", context=yprov4ml.Contexts.TRAINING, step=epoch)
    logger.log(item=model, identifier="mnist_model_version", kind="model", context=yprov4ml.Contexts.TRAINING,
               step=epoch)
for x, y in test_loader:
    logger.log(item=F.cross_entropy(model(x), y).item(), identifier="MSE_test", kind="metric",
               context=yprov4ml.Contexts.TESTING, step=epoch)
logger.log(item=model, identifier="mnist_model_final", kind="best_model")
logger.destroy_logger_context()
