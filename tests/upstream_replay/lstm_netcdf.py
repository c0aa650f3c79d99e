"""The calls of upstream's examples/lstm_classif_cuda.py: netCDF copies through upstream's module path, an
experiment unified at each end, energy and system figures at every batch."""
import sys

import torch
from torch.utils.data import DataLoader, Dataset, random_split

from prov4ml.datamodel.metric_type import MetricsType
import prov4ml
from synthetic import BertTokenizer

TOKENIZER = BertTokenizer.from_pretrained("bert-base-uncased")
prov4ml.start_run(prov_user_namespace="www.example.org", experiment_name="lstm_netcdf",
                  provenance_save_dir=sys.argv[1], metrics_file_type=MetricsType.NETCDF, save_after_n_logs=1,
                  unify_experiments=True)


class TextDataset(Dataset):
    def __init__(self, texts, labels):
        self.texts, self.labels = texts, labels

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, idx):
        encoding = TOKENIZER(self.texts[idx], max_length=16)
        return encoding["input_ids"].squeeze(0), torch.tensor(self.labels[idx])


dataset = TextDataset(["a positive example", "a negative one"] * 16, [1, 0] * 16)
train_ds, test_ds = random_split(dataset, [24, 8], generator=torch.Generator().manual_seed(0))
train_loader = DataLoader(train_ds, batch_size=8, shuffle=True)
test_loader = DataLoader(test_ds, batch_size=8)
prov4ml.log_dataset(train_loader, "train_dataset")
prov4ml.log_dataset(test_loader, "val_dataset")


class LSTMClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(len(TOKENIZER.vocab), 8)
        self.lstm = torch.nn.LSTM(8, 8, batch_first=True)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))
        return self.fc(out[:, -1, :])


model = LSTMClassifier()
optim = torch.optim.Adam(model.parameters(), lr=1e-3)
prov4ml.log_param("optimizer", "Adam")
loss_fn = torch.nn.CrossEntropyLoss()
prov4ml.log_param("loss_fn", "CrossEntropyLoss")
for epoch in range(2):
    for input_ids, labels in train_loader:
        optim.zero_grad()
        loss = loss_fn(model(input_ids), labels)
        loss.backward()
        optim.step()
        prov4ml.log_metric("Loss", loss.item(), context=prov4ml.Context.TRAINING, step=epoch)
        prov4ml.log_carbon_metrics(prov4ml.Context.TRAINING, step=epoch)
        prov4ml.log_system_metrics(prov4ml.Context.TRAINING, step=epoch)
    with torch.no_grad():
        for input_ids, labels in test_loader:
            prov4ml.log_metric("Loss", loss_fn(model(input_ids), labels).item(), prov4ml.Context.VALIDATION,
                               step=epoch)
prov4ml.log_model("lstm_text_classifier_final", model)
prov4ml.end_run(create_graph=True, create_svg=True)
