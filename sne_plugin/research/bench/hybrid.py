"""Probe for issue 13's hybrid: how SNE's predictions and gradient boosting on weight
statistics combine, on the ``--small`` bench tasks.

``record`` fits the default :class:`~sne_plugin.SNERegressor` once per task and seed and keeps,
beside its test predictions, what any statistics model needs (StatNN's aligned features, the
architecture-agnostic summary, the SNE embeddings); ``report`` then scores combinations of
them in seconds, so that no combination costs another SNE fit::

    python -m sne_plugin.research.bench.hybrid record --seeds 3 --out runs/hybrid
    python -m sne_plugin.research.bench.hybrid spectra runs/hybrid  # records made before
    python -m sne_plugin.research.bench.hybrid report runs/hybrid

Each record is one ``.npz`` per task and seed (resumable: records already there are kept).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, rankdata
from sklearn.ensemble import HistGradientBoostingRegressor

__all__ = ["main"]


def _record(task_name: str, seed: int, out: str, cache: str) -> str:
    import torch

    from sne_plugin import SNERegressor
    from sne_plugin.encoder.stats import network_summary
    from sne_plugin.research.baselines import StatNNRegressor
    from sne_plugin.research.bench.methods import side_inputs
    from sne_plugin.research.bench.tasks import ZooCache, select_tasks

    torch.set_num_threads(1)
    path = Path(out) / f"{task_name}_s{seed}.npz"
    if path.exists():
        return f"{path} (kept)"
    task = select_tasks("small", [task_name])[0]
    data = task.load(ZooCache(cache, workers=1, progress=False), seed)
    start = time.perf_counter()
    sne = SNERegressor(device="cpu", verbose=False, random_state=seed, stats_boost=False).fit(
        data.X_train, data.y_train
    )
    fit_s = time.perf_counter() - start
    statnn = StatNNRegressor(random_state=seed).fit(data.X_train, data.y_train)
    extra: dict[str, np.ndarray] = {}
    if task.kind == "early":  # SNE with the side inputs a search has: curve, hyperparameters
        side_train, side_test = side_inputs(data, early=True)
        with_side = SNERegressor(device="cpu", verbose=False, random_state=seed, stats_boost=False)
        with_side.fit(data.X_train, data.y_train, side=side_train)
        extra = {
            "side_train": side_train,
            "side_test": side_test,
            "sne_side_test": with_side.predict(data.X_test, side=side_test),
        }

    def summary(nets: list) -> np.ndarray:
        return np.stack([network_summary(n.spec, n.flatten()) for n in nets])

    arrays: dict[str, Any] = dict(
        y_train=data.y_train,
        y_test=data.y_test,
        sne_test=sne.predict(data.X_test),
        sne_train=sne.predict(data.X_train),
        emb_train=sne.transform(data.X_train),
        emb_test=sne.transform(data.X_test),
        stat_train=statnn.transform(data.X_train),
        stat_test=statnn.transform(data.X_test),
        sum_train=summary(data.X_train),
        sum_test=summary(data.X_test),
        spec_train=_spectra(data.X_train),
        spec_test=_spectra(data.X_test),
        H_train=data.H_train,
        H_test=data.H_test,
        fit_s=fit_s,
        n_epochs=sne.n_epochs_,
        **extra,
    )
    np.savez_compressed(path, **arrays)
    return f"{path} ({fit_s:.0f} s, {sne.n_epochs_} epochs)"


def record(tasks: list[str], seeds: list[int], out: str, cache: str, workers: int) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    units = [(t, s) for s in seeds for t in tasks]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
        futures = [ex.submit(_record, t, s, out, cache) for t, s in units]
        for f in futures:
            print(f.result(), flush=True)


def add_spectra(folder: str, cache: str) -> None:
    """Add the singular values' summaries to records made before ``record`` kept them."""
    from sne_plugin.research.bench.tasks import ZooCache, select_tasks

    zoos = ZooCache(cache, workers=1, progress=False)
    for path in sorted(Path(folder).glob("*.npz")):
        d = dict(np.load(path))
        if "spec_train" in d:
            continue
        task_name, seed = path.stem.rsplit("_s", 1)
        data = select_tasks("small", [task_name])[0].load(zoos, int(seed))
        if not np.array_equal(data.y_test, d["y_test"]):
            raise SystemExit(f"{path}: the task's networks are not those recorded")
        d["spec_train"], d["spec_test"] = _spectra(data.X_train), _spectra(data.X_test)
        np.savez_compressed(path, **d)
        print(path, flush=True)


def _spectra(nets: list) -> np.ndarray:
    from sne_plugin.encoder.stats import spectral_summaries

    return spectral_summaries([n.spec for n in nets], [n.flatten() for n in nets])


def _hgb(seed: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(random_state=seed)


def _z(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (x - ref.mean()) / (ref.std() + 1e-12)


def _variants(d: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    y = d["y_train"]
    statnn = _hgb(seed).fit(d["stat_train"], y).predict(d["stat_test"])
    summ = _hgb(seed).fit(d["sum_train"], y).predict(d["sum_test"])
    both = np.c_[d["stat_train"], d["sum_train"]], np.c_[d["stat_test"], d["sum_test"]]
    stat_sum = _hgb(seed).fit(both[0], y).predict(both[1])
    sne = d["sne_test"]
    out = {
        "sne": sne,
        "statnn": statnn,
        "hgb_summary": summ,
        "hgb_stat+summary": stat_sum,
        "mean(sne, statnn)": (sne + statnn) / 2,
        "mean(sne, hgb_summary)": (sne + summ) / 2,
        "mean(sne, statnn, summary)": (sne + statnn + summ) / 3,
        "rank mean(sne, statnn)": rankdata(sne) + rankdata(statnn),
    }
    out.update(_stats_learners(d, seed))
    emb = np.c_[d["emb_train"], d["sum_train"]], np.c_[d["emb_test"], d["sum_test"]]
    out["hgb(emb+summary)"] = _hgb(seed).fit(emb[0], y).predict(emb[1])
    if "side_train" in d:
        side = _hgb(seed).fit(d["side_train"], y).predict(d["side_test"])
        both = np.c_[d["sum_train"], d["side_train"]], np.c_[d["sum_test"], d["side_test"]]
        sum_side = _hgb(seed).fit(both[0], y).predict(both[1])
        out["side alone (hgb)"] = side
        out["curve"] = d["side_test"][:, 0]
        out["sne+side"] = d["sne_side_test"]
        out["hgb(summary+side)"] = sum_side
        out["mean(sne+side, hgb(summary+side))"] = (d["sne_side_test"] + sum_side) / 2
        out["mean(sne+side, side alone)"] = (d["sne_side_test"] + side) / 2
    return out


def _stats_learners(d: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Other learners on the architecture-agnostic summary, alone and beside SNE: a ridge,
    a slower booster, and forests of extremely randomized trees (missing values filled with
    the training median; ``et`` at scikit-learn's defaults is what ``stats_boost`` fits)."""
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import RidgeCV

    y, sne = d["y_train"], d["sne_test"]
    train, test = _filled(d["sum_train"], d["sum_test"])
    mu, sd = train.mean(0), train.std(0) + 1e-12
    ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit((train - mu) / sd, y)
    hgb = _hgb(seed).fit(d["sum_train"], y).predict(d["sum_test"])
    slow = HistGradientBoostingRegressor(
        learning_rate=0.05, max_iter=200, max_depth=3, l2_regularization=1.0, random_state=seed
    )
    out = {
        "ridge_summary": ridge.predict((test - mu) / sd),
        "hgb_slow_summary": slow.fit(d["sum_train"], y).predict(d["sum_test"]),
    }
    for leaf, share in ((1, 1.0), (1, 0.5), (3, 1.0), (3, 0.5), (5, 1.0), (10, 1.0)):
        et = ExtraTreesRegressor(min_samples_leaf=leaf, max_features=share, random_state=seed)
        out[f"et(leaf {leaf}, features {share})"] = et.fit(train, y).predict(test)
    et = out["et(leaf 1, features 1.0)"]  # scikit-learn's defaults
    out["mean(sne, et)"] = (sne + et) / 2
    out["mean(sne, hgb_summary, et) [stats_boost until 2026-12-07]"] = (sne + hgb + et) / 3
    out["mean(sne, hgb_summary, et(leaf 3, features 0.5))"] = (
        sne + hgb + out["et(leaf 3, features 0.5)"]
    ) / 3
    if "spec_train" in d:  # the singular values' summary beside the weight statistics
        spec = np.c_[d["sum_train"], d["spec_train"]], np.c_[d["sum_test"], d["spec_test"]]
        hgb_s = _hgb(seed).fit(spec[0], y).predict(spec[1])
        filled = _filled(*spec)
        et_s_pred = ExtraTreesRegressor(random_state=seed).fit(filled[0], y).predict(filled[1])
        out["hgb(summary+spectral)"] = hgb_s
        out["et(summary+spectral)"] = et_s_pred
        out["mean(sne, hgb, et) on summary+spectral [stats_boost now]"] = (
            sne + hgb_s + et_s_pred
        ) / 3
    if "side_train" in d:
        both = np.c_[d["sum_train"], d["side_train"]], np.c_[d["sum_test"], d["side_test"]]
        filled = _filled(*both)
        side_et = ExtraTreesRegressor(random_state=seed).fit(filled[0], y).predict(filled[1])
        side_hgb = _hgb(seed).fit(both[0], y).predict(both[1])
        out["mean(sne+side, hgb(summary+side), et(summary+side))"] = (
            d["sne_side_test"] + side_hgb + side_et
        ) / 3
    return out


def _filled(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns known somewhere in ``train``, missing values as the training median."""
    keep = ~np.isnan(train).all(axis=0)
    train, test = train[:, keep], test[:, keep]
    fill = np.nanmedian(train, axis=0)
    return np.where(np.isnan(train), fill, train), np.where(np.isnan(test), fill, test)


def report(folder: str, seeds: list[int] | None = None) -> None:
    rows: dict[str, dict[str, list[float]]] = {}
    for path in sorted(Path(folder).glob("*.npz")):
        task, seed = path.stem.rsplit("_s", 1)
        if seeds is not None and int(seed) not in seeds:
            continue
        d = dict(np.load(path))
        for name, pred in _variants(d, int(seed)).items():
            tau = float(kendalltau(pred, d["y_test"]).statistic)
            rows.setdefault(name, {}).setdefault(task, []).append(tau)
    tasks = sorted({t for r in rows.values() for t in r})
    print("| variant | " + " | ".join(tasks) + " |")
    print("|---" * (len(tasks) + 1) + "|")
    fmt: Callable[[list[float]], str] = lambda v: f"{np.mean(v):.3f} (n={len(v)})"  # noqa: E731
    for name, by_task in rows.items():
        print(f"| {name} | " + " | ".join(fmt(by_task.get(t, [np.nan])) for t in tasks) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="fit SNE per task and seed, keep what report needs")
    rec.add_argument("--seeds", type=int, default=3)
    rec.add_argument("--first-seed", type=int, default=0)
    rec.add_argument("--tasks", nargs="+", default=None)
    rec.add_argument("--out", default="runs/hybrid")
    rec.add_argument("--cache", default="runs/bench")
    rec.add_argument("--workers", type=int, default=2)
    spe = sub.add_parser("spectra", help="add the singular values' summaries to older records")
    spe.add_argument("folder")
    spe.add_argument("--cache", default="runs/bench")
    rep = sub.add_parser("report", help="score the combinations on the records")
    rep.add_argument("folder")
    rep.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds")
    args = parser.parse_args(argv)
    if args.command == "record":
        from sne_plugin.research.bench.tasks import select_tasks

        tasks = args.tasks or [t.name for t in select_tasks("small")]
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        record(tasks, seeds, args.out, args.cache, args.workers)
    elif args.command == "spectra":
        add_spectra(args.folder, args.cache)
    else:
        report(args.folder, args.seeds)


if __name__ == "__main__":
    main()
