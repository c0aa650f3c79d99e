"""The seed paper's MNIST example, instrumented with yprov4ml exactly as in the paper.

The only change is where the data comes from: nothing is downloaded, so the
images are synthetic 28x28 digits (a fixed random pattern per class plus
noise), which a small network learns in a few epochs.

    python examples/mnist.py --epochs 2
"""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import yprov4ml as prov4ml

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--samples", type=int, default=2048)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--save-dir", default="prov")
args = parser.parse_args()

torch.manual_seed(0)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPOCHS, BATCH_SIZE, LR = args.epochs, args.batch_size, args.lr


def synthetic_mnist(samples: int, seed: int = 0) -> TensorDataset:
    prototypes = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(2024))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    images = prototypes[labels] + 0.3 * torch.randn(samples, 1, 28, 28, generator=generator)
    return TensorDataset(images, labels)


class MNISTModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sequential = torch.nn.Sequential(torch.nn.Linear(28 * 28, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.sequential(x.view(x.shape[0], -1))


prov4ml.start_run(
    prov_user_namespace="www.example.org",
    experiment_name="mnist",
    provenance_save_dir=args.save_dir,
    save_after_n_logs=100,
    collect_all_processes=True,
)

tform = "synthetic digits: prototype + 0.3 * N(0, 1) noise"
prov4ml.log_param("dataset transformation", tform)
prov4ml.log_param("learning_rate", LR)
prov4ml.log_param("batch_size", BATCH_SIZE)

train_loader = DataLoader(synthetic_mnist(args.samples), batch_size=BATCH_SIZE, shuffle=True)
test_loader = DataLoader(synthetic_mnist(args.samples // 4, seed=1), batch_size=BATCH_SIZE)
prov4ml.log_dataset(train_loader, "train_dataset")
prov4ml.log_dataset(test_loader, "test_dataset")

mnist_model = MNISTModel().to(DEVICE)
optim = torch.optim.Adam(mnist_model.parameters(), lr=LR)
loss_fn = torch.nn.MSELoss()

for epoch in range(EPOCHS):
    for i, (x, y) in enumerate(train_loader):
        x, y = x.to(DEVICE), y.to(DEVICE)
        optim.zero_grad()
        y_hat = mnist_model(x)
        y = F.one_hot(y, 10).float()
        loss = loss_fn(y_hat, y)
        loss.backward()
        optim.step()
        prov4ml.log_metric("MSE_train", loss.item(), context=prov4ml.Context.TRAINING, step=epoch)

    # log system and carbon metrics (once per epoch), as well as the execution time
    prov4ml.log_carbon_metrics(prov4ml.Context.TRAINING, step=epoch)
    prov4ml.log_system_metrics(prov4ml.Context.TRAINING, step=epoch)
    prov4ml.log_current_execution_time("train_epoch_time", prov4ml.Context.TRAINING, epoch)
    # save incremental model versions
    prov4ml.save_model_version(mnist_model, "mnist_model", prov4ml.Context.TRAINING, epoch)

correct = 0
with torch.no_grad():
    for i, (x, y) in enumerate(test_loader):
        y_hat = mnist_model(x.to(DEVICE))
        loss = loss_fn(y_hat, F.one_hot(y, 10).float().to(DEVICE))
        correct += (y_hat.argmax(dim=1).cpu() == y).sum().item()
        prov4ml.log_metric("MSE_test", loss.item(), prov4ml.Context.EVALUATION, step=i)
prov4ml.log_metric("accuracy", correct / len(test_loader.dataset), prov4ml.Context.EVALUATION, step=EPOCHS)

prov4ml.log_model(mnist_model, "mnist_model_final")
run_dir = prov4ml.active_run().run_dir
document = prov4ml.end_run(create_graph=True, create_svg=True)
print(f"accuracy {correct / len(test_loader.dataset):.3f}; provenance written to {run_dir}")
print(f"  document: {document}\n  look at it: yprov4ml show {run_dir}")
