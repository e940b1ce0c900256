"""SNE variants on one zoo split, one line each (the "measured alternatives" table).

    python -m sne_plugin.research.bench.ablation runs/zoo_small_cnn_digits '{"epochs": 30}' \
        '{"epochs": 30, "chunk_position": false}' '{"epochs": 30, "tensor_stats": false}'

Each argument after the zoo path is a JSON object of SNERegressor parameters.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import kendalltau

from sne_plugin import SNERegressor
from sne_plugin.research.zoo import load_zoo


def main(path: str, variants: list[str]) -> None:
    torch.set_num_threads(1)
    zoo = load_zoo(path)
    X, y = zoo.weights(epoch="final"), zoo.targets("test_acc")
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[: int(0.8 * len(y))], order[int(0.8 * len(y)) :]
    for params in map(json.loads, variants):
        est = SNERegressor(**{"random_state": 0, **params})
        start = time.time()
        est.fit([X[i] for i in train], y[train])
        pred = est.predict([X[i] for i in test])
        alive = y[test] >= 0.2
        print(
            params,
            f"tau {kendalltau(pred, y[test]).statistic:.3f}",
            f"tau(acc>=0.2) {kendalltau(pred[alive], y[test][alive]).statistic:.3f}",
            f"fit {time.time() - start:.0f} s, {est.n_epochs_} epochs",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zoo", help="a zoo folder (sne zoo build)")
    parser.add_argument("variants", nargs="+", help="JSON objects of SNERegressor parameters")
    args = parser.parse_args()
    main(args.zoo, args.variants)
