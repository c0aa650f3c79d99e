"""Synthetic stand-ins for the data loading of upstream yProv4ML's examples: nothing is downloaded.

``MNIST`` / ``CIFAR10`` (torchvision's signature, deterministic images made from the index), ``transforms``
(torchvision's names, applied to those tensors), ``BertTokenizer`` (transformers' call form) and ``tfds.load``
(tensorflow_datasets' call form: tf.data datasets of $SYNTHETIC_TFDS_SIZES train,test
examples, 512,128 unless set). The replayed scripts import these instead of the
real packages; everything else in them is as written.
"""

from __future__ import annotations

import os
import types

import torch


class _Transform:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, image):
        return image

    def __repr__(self) -> str:
        args = ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
        return f"{type(self).__name__}({args})"


class Compose(_Transform):
    def __call__(self, image):
        for step in self.args[0]:
            image = step(image)
        return image


class RandomHorizontalFlip(_Transform):
    def __call__(self, image):
        return torch.flip(image, dims=[-1])


class RandomVerticalFlip(_Transform):
    def __call__(self, image):
        return torch.flip(image, dims=[-2])


transforms = types.SimpleNamespace(
    Compose=Compose, ToTensor=type("ToTensor", (_Transform,), {}),
    RandomRotation=type("RandomRotation", (_Transform,), {}), RandomCrop=type("RandomCrop", (_Transform,), {}),
    Normalize=type("Normalize", (_Transform,), {}), RandomHorizontalFlip=RandomHorizontalFlip,
    RandomVerticalFlip=RandomVerticalFlip)


class _Images(torch.utils.data.Dataset):
    shape: tuple = ()
    sizes = (60000, 10000)

    def __init__(self, root: str, train: bool = True, download: bool = False, transform=None):
        self.root, self.train, self.transform = root, train, transform

    def __len__(self) -> int:
        return self.sizes[0] if self.train else self.sizes[1]

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(int(index) + (0 if self.train else 1 << 30))
        image = torch.rand(self.shape, generator=generator)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(index) % 10


class MNIST(_Images):
    shape = (1, 28, 28)


class CIFAR10(_Images):
    shape = (3, 32, 32)
    sizes = (50000, 10000)


class BertTokenizer:
    """Words → ids from a fixed small vocabulary, padded or cut to ``max_length``."""

    def __init__(self):
        self.vocab = {f"w{i}": i for i in range(1000)}

    @classmethod
    def from_pretrained(cls, name: str) -> "BertTokenizer":
        return cls()

    def __call__(self, text: str, padding: str = "max_length", truncation: bool = True, max_length: int = 128,
                 return_tensors: str = "pt"):
        ids = [sum(map(ord, word)) % 1000 for word in text.split()][:max_length]
        mask = [1] * len(ids) + [0] * (max_length - len(ids))
        ids = ids + [0] * (max_length - len(ids))
        return {"input_ids": torch.tensor([ids]), "attention_mask": torch.tensor([mask])}


def _tfds_load(name: str, split=("train", "test"), shuffle_files: bool = False, as_supervised: bool = True,
               with_info: bool = False, **_):
    import numpy as np
    import tensorflow as tf

    shape = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}[name]
    sizes = dict(zip(("train", "test"), map(int, os.environ.get("SYNTHETIC_TFDS_SIZES", "512,128").split(","))))
    datasets = []
    for part in split:
        rng = np.random.default_rng(sizes[part])
        images = rng.integers(0, 256, size=(sizes[part], *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, size=sizes[part], dtype=np.int64)
        datasets.append(tf.data.Dataset.from_tensor_slices((images, labels)))
    info = types.SimpleNamespace(splits={part: types.SimpleNamespace(num_examples=sizes[part]) for part in split})
    return (datasets, info) if with_info else datasets


tfds = types.SimpleNamespace(load=_tfds_load)
