"""Short timings for A/B comparisons of SNERegressor's cost, one process each (one torch thread).

Run the same command against two versions of the code, alternating, and compare the ratios
(the machines here are shared; absolute figures drift between sessions)::

    git archive 0c62dea sne_plugin | tar -x -C /tmp/old      # an older version, say
    PYTHONPATH=/tmp/old python -m sne_plugin.research.bench.abtime epoch --zoo runs/cost_zoo
    python -m sne_plugin.research.bench.abtime epoch --zoo runs/cost_zoo
    python -m sne_plugin.research.bench.abtime predict --zoo runs/cost_zoo

``epoch``: CPU seconds per training epoch on the whole zoo (4 epochs, the network alone, after
a warm-up fit that pays the imports). ``predict``: the median milliseconds of ``predict`` on
one network, for the default (boosted) regressor, the same regressor without its trees, and
StatNN, in rounds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["main"]


def _median_ms(call: Callable[[], Any], repeats: int = 60) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def epoch(zoo: str, epochs: int = 4) -> None:
    from sne_plugin import SNERegressor
    from sne_plugin.research.zoo import load_zoo

    loaded = load_zoo(zoo)
    nets, y = loaded.weights(), loaded.targets()
    params = SNERegressor().get_params()
    alone: dict[str, Any] = {"stats_boost": False} if "stats_boost" in params else {}
    reg = SNERegressor(random_state=0, epochs=epochs, patience=100, verbose=False, **alone)
    reg.fit(nets[:50], y[:50])  # imports, the optimizer's first use
    start = time.process_time()
    reg.fit(nets, y)
    print(f"CPU s per epoch: {(time.process_time() - start) / epochs:.2f} ({len(nets)} networks)")


def predict(zoo: str, n: int = 400, rounds: int = 3) -> None:
    from sne_plugin import SNERegressor
    from sne_plugin.research.baselines import StatNNRegressor
    from sne_plugin.research.zoo import load_zoo

    loaded = load_zoo(zoo)
    nets, y = loaded.weights()[:n], loaded.targets()[:n]
    reg = SNERegressor(random_state=0, epochs=2, verbose=False).fit(nets, y)
    stat = StatNNRegressor(random_state=0).fit(nets, y)
    trees, x = getattr(reg, "trees_", None), nets[0]
    for r in range(rounds):
        reg.trees_ = trees
        boosted = _median_ms(lambda: reg.predict([x]))
        reg.trees_ = None
        alone = _median_ms(lambda: reg.predict([x]))
        statnn = _median_ms(lambda: stat.predict([x]))
        print(
            f"round {r}: default {boosted:.2f} ms, network alone {alone:.2f} ms, "
            f"StatNN {statnn:.2f} ms"
        )


def main(argv: list[str] | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("epoch", "predict"))
    parser.add_argument("--zoo", default="runs/cost_zoo")
    args = parser.parse_args(argv)
    (epoch if args.what == "epoch" else predict)(args.zoo)


if __name__ == "__main__":
    main()
