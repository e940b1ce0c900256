"""Model zoos: offline datasets, small architectures, fast grouped training, a crash-safe
store, and loaders for published zoos (Unterthiner et al.'s Small CNN Zoo, Schürholt et
al.'s Model Zoos).

>>> from sne_plugin.research import zoo
>>> "small_cnn" in zoo.ARCHITECTURES and "digits" in zoo.DATASETS
True
"""

from __future__ import annotations

from sne_plugin.research.zoo.architectures import ARCHITECTURES, build, to_network_weights
from sne_plugin.research.zoo.build import build_zoo
from sne_plugin.research.zoo.datasets import DATASETS, load_dataset
from sne_plugin.research.zoo.published import load_model_zoo, load_small_cnn_zoo
from sne_plugin.research.zoo.store import BaseZoo, Zoo, build_module, load_zoo

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "BaseZoo",
    "Zoo",
    "build",
    "build_module",
    "build_zoo",
    "load_dataset",
    "load_model_zoo",
    "load_small_cnn_zoo",
    "load_zoo",
    "to_network_weights",
]
