"""Upstream's vector metrics, indexed datasets (sample-level lineage) and tracked wrappers, recorded for real."""

from __future__ import annotations

import json

import pytest

import yprov4ml
from yprov4ml.prov.decode import attributes, prov_type

from conftest import assert_valid_prov, killed_then_recovered

torch = pytest.importorskip("torch")


def _entities(doc: dict, kind: str) -> dict[str, dict]:
    """The entities of one prov:type, their typed values decoded (``yprov:`` dropped from the names)."""
    return {k: attributes(v) for k, v in doc["entity"].items() if prov_type(v) == kind}


def test_vectors_and_sample_indices_round_trip_and_are_typed_in_prov(save_dir):
    with yprov4ml.start_run("www.example.org", "vectors", save_dir) as run:
        yprov4ml.log_metric("grad_norms", [0.5, 1.5, float("nan")], step=0)
        yprov4ml.log_metric("grad_norms", torch.tensor([2.0, 3.0, 4.0]), step=1)
        yprov4ml.log_metric("confusion", [[1, 2], [3, 4]], yprov4ml.Context.VALIDATION, 0)  # ints, not indices
        yprov4ml.log_metric("Indices", torch.tensor([7, 3, 5]), step=0)  # upstream's key: sample lineage
        yprov4ml.log_metric("Indices", [1, 2], step=0)  # a step may consume several batches
        yprov4ml.log_sample_indices(range(4), yprov4ml.Context.VALIDATION, 3, label="val")
        yprov4ml.log_metric("loss", 0.25)
        with pytest.raises(yprov4ml.InvalidMetricError, match="holds vectors"):
            yprov4ml.log_metric("grad_norms", 1.0)
        with pytest.raises(yprov4ml.InvalidMetricError, match="holds numbers"):
            yprov4ml.log_metric("loss", [1.0, 2.0])
        with pytest.raises(yprov4ml.InvalidMetricError, match="must be integers"):
            yprov4ml.log_sample_indices([0.5], label="val")
    view = yprov4ml.load_run(run.run_dir)
    vectors = view.metric("grad_norms")
    assert vectors.kind == "vector" and vectors.steps == [0, 1]
    assert vectors.values[0][:2] == [0.5, 1.5] and vectors.values[0][2] != vectors.values[0][2]  # NaN kept
    assert vectors.values[1] == [2.0, 3.0, 4.0]
    assert view.metric("confusion", "validation").values == [[1.0, 2.0, 3.0, 4.0]]
    lineage = view.sample_indices["Indices", "training"]
    assert lineage.steps == [0, 0] and lineage.values == [[7, 3, 5], [1, 2]]
    assert view.sample_indices["val", "validation"].values == [[0, 1, 2, 3]]
    assert ("Indices", "training") not in view.metrics and view.metric("loss").values == [0.25]
    doc = assert_valid_prov(run.prov_path)
    series = {v["key"]: v for v in _entities(doc, "yprov:MetricSeries").values()}
    assert series["grad_norms"]["kind"] == "vector" and series["grad_norms"]["elements"] == 6
    assert json.loads(series["confusion"]["shape"]) == [2, 2]
    (indices,) = [v for v in _entities(doc, "yprov:SampleIndices").values() if v["key"] == "Indices"]
    assert indices["samples"] == 5 and indices["distinct_samples"] == 5 and indices["count"] == 2
    assert indices["prov:location"] == "metrics.rank0.ymetric"  # one file per rank, whatever the series
    assert sorted(p.name for p in run.run_dir.iterdir() if p.is_file()) == \
        ["journal.rank0.jsonl", "metrics.rank0.ymetric", "prov.rank0.json"]


def test_the_indexed_dataset_records_every_batch_and_links_it_to_its_dataset(save_dir):
    from yprov4ml.wrappers.indexed_dataset import IndexedDatasetWrapper  # upstream's import path

    data = torch.utils.data.TensorDataset(torch.arange(20.0).reshape(10, 2), torch.arange(10))
    wrapped = IndexedDatasetWrapper(torch.utils.data.Subset(data, range(2, 10)))
    loader = torch.utils.data.DataLoader(wrapped, batch_size=3, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen = []
    with yprov4ml.start_run("www.example.org", "indexed", save_dir) as run:
        yprov4ml.log_dataset("train_dataset", loader)  # upstream's order: the label first
        for epoch in range(2):
            for indices, (x, y) in loader:
                assert torch.equal(x[:, 0] / 2, y.float())  # the items are the subset's own
                seen.append(indices.tolist())
    view = yprov4ml.load_run(run.run_dir)
    lineage = view.sample_indices["train_dataset", "training"]
    assert lineage.values == seen and lineage.steps == list(range(len(seen)))  # one step per batch fetched
    assert sorted(i for batch in seen[:3] for i in batch) == list(range(8))  # an epoch: each sample once
    (dataset,) = view.datasets
    assert dataset["sample_indices"] == "train_dataset" and dataset["samples"] == 8
    assert len(dataset["sha256"]) == 64  # the subset's data and its choice of samples, fingerprinted
    doc = assert_valid_prov(run.prov_path)
    derived = [r for r in doc["wasDerivedFrom"].values()
               if r["prov:usedEntity"].endswith("/dataset/train_dataset")]
    assert derived and derived[0]["prov:generatedEntity"].startswith("run:rank-0/metric/training/")


def test_loader_workers_fetch_in_children_that_never_record_and_the_batch_indices_still_can_be(save_dir):
    from yprov4ml.integrations.indexed_dataset import IndexedDatasetWrapper

    data = torch.utils.data.TensorDataset(torch.zeros(8, 1))
    loader = torch.utils.data.DataLoader(IndexedDatasetWrapper(data), batch_size=4, num_workers=2)
    with yprov4ml.start_run("www.example.org", "workers", save_dir) as run:
        for step, (indices, _) in enumerate(loader):
            yprov4ml.log_metric("indices", indices, step=step)  # what the docs say to do with workers
    view = yprov4ml.load_run(run.run_dir)
    assert set(view.sample_indices) == {("indices", "training")}  # the children recorded nothing themselves
    assert view.sample_indices["indices", "training"].values == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_tracked_function_and_models_record_results_activations_and_weights(save_dir):
    import zarr

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x, y = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), torch.zeros(6, 2)
    with yprov4ml.start_run("www.example.org", "tracked", save_dir) as run:
        tracked = yprov4ml.ProvenanceTrackedModel("mlp", net, "training", chunk_size=4)
        loss_fn = yprov4ml.ProvenanceTrackedFunction(torch.nn.MSELoss(), "training")
        weights = yprov4ml.WeightDistributionTrackedModel("mlp", net)
        losses = [loss_fn(tracked(batch), target).item() for batch, target in ((x[:4], y[:4]), (x[4:], y[4:]))]
        stats = weights.log_epoch(0)
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("MSELoss").values == pytest.approx(losses) and view.metric("MSELoss").steps == [0, 1]
    assert stats["0"]["min"] == pytest.approx(net[0].weight.min().item())
    assert view.metric("mlp.2.weight_p50").values == [pytest.approx(net[2].weight.detach().flatten().quantile(0.5).item())]
    (store,) = [a for a in view.artifacts if a["name"] == "mlp activations"]
    assert store["prov:location"] == "artifacts/rank0/mlp.zarr" and store["layers"] == 2
    group = zarr.open_group(str(run.run_dir / store["prov:location"]), mode="r")
    assert group["0/input"].shape == (6, 4) and group["2/output"].shape == (6, 2)  # both batches, in order
    expected = net(x).detach().numpy()
    assert abs(group["2/output"][:].astype("float32") - expected).max() < 1e-2  # float16, as upstream


def test_vectors_and_indices_survive_a_kill(tmp_path):
    run_dir = killed_then_recovered(tmp_path, "yprov4ml.log_metric('v', [1.0, 2.0], step=0); "
                                    "yprov4ml.log_sample_indices([4, 2], step=0); yprov4ml.active_run()._writer.drain()")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "KILLED" and view.metric("v").values == [[1.0, 2.0]]
    assert view.sample_indices["indices", "training"].values == [[4, 2]] and not view.problems
