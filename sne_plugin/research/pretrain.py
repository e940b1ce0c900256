"""Training data for the pretrained predictor, from the meta-zoo, and its held-out check.

One sample is one model of one zoo at one saved epoch ``k``: its weights at ``k``, its
curve features at ``k`` (:func:`sne_plugin.curve.curve_features`, among peers of the same
zoo) and, as the target, the percentile rank of its final test accuracy within its zoo: a
loss within each zoo, so one dataset's accuracy scale does not matter. A live search ranks
a trial among however many trials it has so far; to train for that, the peers of a sample
are a random block of its zoo, of a size drawn log-uniformly from ``min_peers`` to the zoo
(:func:`zoo_samples`), and the planned number of epochs is hidden (NaN) in a quarter of the
samples, as it is in a search before any trial has finished.

A held-out search (:data:`sne_plugin.research.metazoo.HELD_OUT`) seed is scored at each step
``k`` by Kendall's tau between a predictor's scores for its trials and their final values
(:func:`held_out_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from sne_plugin.curve import curve_features, percentile_ranks
from sne_plugin.weights import NetworkWeights

__all__ = ["Samples", "held_out_samples", "held_out_scores", "zoo_samples"]


@dataclass
class Samples:
    """Rows of training (or test) data; ``nets`` is filled only when weights are asked for."""

    side: np.ndarray  # (m, len(CURVE_FEATURES))
    target: np.ndarray  # (m,)
    group: np.ndarray  # (m,) ints: one per (zoo or search seed, epoch)
    final: np.ndarray  # (m,) the raw final values
    model: list[tuple[Any, int]]  # (zoo, record index)
    epoch: np.ndarray  # (m,)
    nets: list[NetworkWeights] | None = None
    peers: np.ndarray | None = None  # (m,) the block of peers a row was ranked in, per group

    def __len__(self) -> int:
        return len(self.target)

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        nets = None
        if all(p.nets is not None for p in parts):
            nets = [n for p in parts for n in p.nets]  # type: ignore[union-attr]
        peers = None
        if all(p.peers is not None for p in parts):
            peers = np.concatenate([p.peers for p in parts if p.peers is not None])
        return Samples(
            np.concatenate([p.side for p in parts]),
            np.concatenate([p.target for p in parts]),
            np.concatenate([p.group for p in parts]),
            np.concatenate([p.final for p in parts]),
            [m for p in parts for m in p.model],
            np.concatenate([p.epoch for p in parts]),
            nets,
            peers,
        )


def _curves(zoo: Any, epochs: int) -> np.ndarray:
    """``(n, epochs + 1)`` test accuracy after each epoch 0..epochs (NaN past a model's end)."""
    out = np.full((len(zoo), epochs + 1), np.nan)
    for i, r in enumerate(zoo.records):
        for e, a in r["acc_by_epoch"].items():
            if int(e) <= epochs:
                out[i, int(e)] = float(a)
    return out


def _features_at(curves: np.ndarray, k: int, progress: np.ndarray) -> np.ndarray:
    """Curve features at epoch ``k >= 1`` of every row, ranked among all rows given."""
    now = curves[:, k]
    prev = curves[:, k - 1] if k >= 2 else np.full(len(curves), np.nan)
    best = np.nanmax(curves[:, 1 : k + 1], axis=1)
    return curve_features(now, prev, best, progress)


def _blocks(n: int, rng: np.random.Generator, min_peers: int) -> list[np.ndarray]:
    """A random partition of ``range(n)`` into blocks of log-uniform random sizes."""
    order = rng.permutation(n)
    blocks, start = [], 0
    while start < n:
        size = int(np.exp(rng.uniform(np.log(min_peers), np.log(max(n, min_peers + 1)))))
        size = min(max(size, min_peers), n - start)
        if n - start - size < min_peers:
            size = n - start
        blocks.append(order[start : start + size])
        start += size
    return blocks


def zoo_samples(
    zoo: Any,
    epochs: Sequence[int],
    *,
    group_base: int,
    rng: np.random.Generator,
    min_peers: int = 5,
    hide_progress: float = 0.25,
    with_weights: bool = False,
) -> Samples:
    """Samples of ``zoo`` at each saved epoch of ``epochs`` (see the module doc)."""
    finals = np.array([r["final_epoch"] for r in zoo.records], dtype=float)
    curves = _curves(zoo, int(finals.max()))
    target = percentile_ranks(zoo.targets())
    parts: list[Samples] = []
    for j, k in enumerate(epochs):
        side = np.full((len(zoo), 5), np.nan)
        peers = np.zeros(len(zoo), dtype=int)
        progress = np.where(rng.random(len(zoo)) < hide_progress, np.nan, k / finals)
        for b, block in enumerate(_blocks(len(zoo), rng, min_peers)):
            side[block] = _features_at(curves[block], k, progress[block])
            peers[block] = b
        nets = zoo.weights(k) if with_weights else None
        parts.append(
            Samples(
                side,
                target.copy(),
                np.full(len(zoo), group_base + j),
                zoo.targets(),
                [(zoo, i) for i in range(len(zoo))],
                np.full(len(zoo), k),
                nets,
                peers,
            )
        )
    return Samples.concat(parts)


def held_out_samples(
    zoo: Any, trials: int, seed: int, epochs: Sequence[int], *, with_weights: bool = False
) -> Samples:
    """Seed ``seed`` of a held-out search: its ``trials`` models, ranked among themselves
    at each of ``epochs`` with the planned epochs known (as once a trial has finished)."""
    idx = np.arange(seed * trials, (seed + 1) * trials)
    finals = np.array([zoo.records[i]["final_epoch"] for i in idx], dtype=float)
    curves = _curves(zoo, int(finals.max()))[idx]
    final = zoo.targets()[idx]
    all_nets = None
    parts = []
    for j, k in enumerate(epochs):
        side = _features_at(curves, k, k / finals)
        if with_weights:
            all_nets = zoo.weights(k)
        parts.append(
            Samples(
                side,
                percentile_ranks(final),
                np.full(trials, seed * 1000 + j),
                final,
                [(zoo, int(i)) for i in idx],
                np.full(trials, k),
                None if all_nets is None else [all_nets[i] for i in idx],
            )
        )
    return Samples.concat(parts)


def held_out_scores(samples: Samples, score: Callable[[Samples], np.ndarray]) -> dict[int, float]:
    """Mean Kendall's tau per epoch between ``score(samples)`` and the final values, each
    (seed, epoch) group on its own."""
    s = score(samples)
    out: dict[int, list[float]] = {}
    for g in np.unique(samples.group):
        m = samples.group == g
        tau = kendalltau(s[m], samples.final[m]).statistic
        out.setdefault(int(samples.epoch[m][0]), []).append(
            0.0 if not np.isfinite(tau) else float(tau)
        )
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


# ---------------------------------------------------------------------- fit and evaluate
def meta_zoos(root: str | Path, wide: bool = False) -> list[Any]:
    """The complete zoos of the meta-zoo under ``root``, in :data:`META_ZOO` order (with
    ``wide``, :data:`META_ZOO_WIDE`'s)."""
    from sne_plugin.research.metazoo import META_ZOO, META_ZOO_WIDE
    from sne_plugin.research.zoo import load_zoo
    from sne_plugin.research.zoo.store import read_records

    zoos = []
    for spec in META_ZOO_WIDE if wide else META_ZOO:
        folder = Path(root) / spec.name
        if folder.is_dir() and len(read_records(folder)) == spec.n_models:
            zoos.append(load_zoo(folder))
    return zoos


def training_samples(zoos: Sequence[Any], epochs: Sequence[int], seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    return Samples.concat(
        [
            zoo_samples(z, epochs, group_base=100 * i, rng=rng, with_weights=True)
            for i, z in enumerate(zoos)
        ]
    )


def fit_predictor(
    zoos: Sequence[Any],
    *,
    model: str = "wstats",
    epochs: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    max_samples: int | None = None,
    shrink: float = 0.0,
    curve_degree: int | None = None,
) -> Any:
    """Fit a :class:`~sne_plugin.pretrained.CurvePredictor` on ``zoos``: the weights'
    correction, and with ``curve_degree`` a :class:`~sne_plugin.curve.CurveModel` as its base
    (fitted by :func:`fit_curve_model` on every epoch 1-8 of the same zoos)."""
    import time

    from sne_plugin import __version__
    from sne_plugin.pretrained import CurvePredictor

    t0 = time.perf_counter()
    s = training_samples(zoos, epochs, seed)
    if max_samples is not None and len(s) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(s), max_samples, replace=False))
        s = _subset(s, keep)
    residual = s.target - np.nan_to_num(s.side[:, 0], nan=0.5)
    if model == "wstats":
        from sne_plugin.wstats import WeightStatsModel

        reg: Any = WeightStatsModel(random_state=seed)
        reg.fit_summaries(reg.transform(s.nets), residual, s.side)
    elif model == "sne":
        from sne_plugin.regressor import SNERegressor

        reg = SNERegressor(
            chunk_size=64,
            width=32,
            heads=2,
            epochs=12,
            invariance_weight=0.0,
            loss="mse",
            validation_fraction=0.1,
            patience=4,
            stats_boost=False,  # a correction read through predict_embedded: the network alone
            random_state=seed,
            verbose=True,
        ).fit(s.nets, residual, side=s.side)
    else:
        raise ValueError(f"model must be 'wstats' or 'sne', got {model!r}")
    info = {
        "package_version": __version__,
        "model": model,
        "zoos": [f"{z.manifest['arch']}/{z.manifest['dataset']}" for z in zoos],
        "n_models": int(sum(len(z) for z in zoos)),
        "n_samples": len(s),
        "epochs": list(epochs),
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "seed": seed,
    }
    info["shrink_chosen_by"] = "python -m sne_plugin.research.pretrain cv (BENCHMARKS.md)"
    curve = None
    if curve_degree is not None:
        t1 = time.perf_counter()
        curve = fit_curve_model(zoos, degree=curve_degree, seed=seed)
        info["curve_model"] = {
            "degree": curve_degree,
            "alpha": curve.alpha,
            "epochs": list(CURVE_EPOCHS),
            "fit_seconds": round(time.perf_counter() - t1, 1),
            "chosen_by": "python -m sne_plugin.research.pretrain cv-curve (BENCHMARKS.md)",
        }
    return CurvePredictor(reg, info, shrink=shrink, curve=curve)


CURVE_EPOCHS = tuple(range(1, 9))
"""The epochs whose curve features train the curve model (every model has at least 8)."""


def curve_samples(zoos: Sequence[Any], seed: int = 0) -> Samples:
    """Curve-only samples (no weights) of ``zoos`` at every epoch of :data:`CURVE_EPOCHS`."""
    rng = np.random.default_rng(seed)
    return Samples.concat(
        [zoo_samples(z, CURVE_EPOCHS, group_base=100 * i, rng=rng) for i, z in enumerate(zoos)]
    )


def fit_curve_model(
    zoos: Sequence[Any], *, degree: int = 3, alpha: float = 1e-4, seed: int = 0
) -> Any:
    """A :class:`~sne_plugin.curve.CurveModel` of the final rank, on ``zoos``' curves."""
    from sne_plugin.curve import CurveModel

    s = curve_samples(zoos, seed)
    return CurveModel(degree, alpha).fit(s.side, s.target)


def cross_validate_curve(
    zoos: Sequence[Any],
    degrees: Sequence[int] = (1, 2, 3),
    alphas: Sequence[float] = (1e-4, 1e-2),
    epochs: Sequence[int] = (1, 2, 3, 4, 6),
    seed: int = 0,
) -> dict[str, dict[str, dict[int, float]]]:
    """Leave-out folds of the meta-zoo (as :func:`cross_validate`): mean tau per epoch on
    the left-out zoos, each ranked whole, of ``rank_now``, ``rank_best`` and curve models;
    with the planned epochs known (``known``) and hidden (``hidden``), as before any trial
    of a search has finished. This is where the curve model's form is chosen."""
    from sne_plugin.curve import CurveModel

    out: dict[str, dict[str, dict[int, float]]] = {}
    rng = np.random.default_rng(seed)
    for name, test_mask in _folds(zoos).items():
        train = [z for z, t in zip(zoos, test_mask) if not t]
        test = [z for z, t in zip(zoos, test_mask) if t]
        if not train or not test:
            continue
        tr = curve_samples(train, seed)
        models = {
            f"poly{d} alpha={a:g}": CurveModel(d, a).fit(tr.side, tr.target)
            for d in degrees
            for a in alphas
        }
        for plan, hide in (("known", 0.0), ("hidden", 1.0)):
            te = Samples.concat(
                [
                    zoo_samples(
                        z, epochs, group_base=100 * i, rng=rng, min_peers=len(z), hide_progress=hide
                    )
                    for i, z in enumerate(test)
                ]
            )
            scores = {
                "rank_now": np.nan_to_num(te.side[:, 0], nan=0.5),
                "rank_best": np.nan_to_num(te.side[:, 2], nan=0.5),
                **{k: m.predict(te.side) for k, m in models.items()},
            }
            for k, v in scores.items():
                out.setdefault(f"{name} {plan}", {})[k] = held_out_scores(te, _const(v))
    return out


def _folds(zoos: Sequence[Any]) -> dict[str, list[bool]]:
    """Leave-out folds: each dataset, and CNNs against MLPs."""

    def fam(z: Any) -> str:
        return "mlp" if z.manifest["arch"].startswith("mlp") else "cnn"

    folds = {
        f"dataset={d}": [z.manifest["dataset"] == d for z in zoos]
        for d in sorted({z.manifest["dataset"] for z in zoos})
    }
    folds.update({f"family={f}": [fam(z) == f for z in zoos] for f in ("cnn", "mlp")})
    return folds


def _subset(s: Samples, idx: np.ndarray) -> Samples:
    return Samples(
        s.side[idx],
        s.target[idx],
        s.group[idx],
        s.final[idx],
        [s.model[i] for i in idx],
        s.epoch[idx],
        None if s.nets is None else [s.nets[i] for i in idx],
    )


def evaluate(
    predictor: Any, root: str | Path, epochs: Sequence[int] = (1, 2, 3, 4, 6)
) -> dict[str, dict[str, dict[int, float]]]:
    """Per held-out search: mean tau per epoch of the predictor and of the curve alone."""
    from sne_plugin.research.metazoo import HELD_OUT
    from sne_plugin.research.zoo import load_zoo

    out: dict[str, dict[str, dict[int, float]]] = {}
    for search in HELD_OUT:
        folder = Path(root) / search.spec().name
        if not folder.is_dir():
            continue
        zoo = load_zoo(folder)
        if len(zoo) < search.trials * search.seeds:
            continue
        cache = {k: zoo.weights(k) for k in epochs}
        parts = []
        for seed in range(search.seeds):
            p = held_out_samples(zoo, search.trials, seed, epochs)
            p.nets = [cache[int(k)][zi] for (_, zi), k in zip(p.model, p.epoch)]
            parts.append(p)
        s = Samples.concat(parts)
        out[search.name] = {
            "predictor": held_out_scores(s, lambda x: predictor.predict(x.nets, x.side)),
            "curve": held_out_scores(s, lambda x: x.side[:, 0]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m sne_plugin.research.pretrain",
        description="Fit the pretrained predictor on the meta-zoo, or score one on the "
        "held-out searches.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("what", choices=["fit", "eval", "cv", "cv-curve"])
    parser.add_argument("--meta", default="runs/metazoo", help="meta-zoo folder")
    parser.add_argument("--held-out", default="runs/heldout", help="held-out searches folder")
    parser.add_argument("--model", default="wstats", choices=["wstats", "sne"])
    parser.add_argument("--out", default=None, help="predictor folder (default: the package's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wide", action="store_true", help="cv on META_ZOO_WIDE's zoos")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument(
        "--shrink", type=float, default=0.0, help="weight of the correction (chosen by cv)"
    )
    parser.add_argument(
        "--curve-degree",
        type=int,
        default=None,
        help="fit a curve model of this degree as the base (chosen by cv-curve); none: rank_now",
    )
    args = parser.parse_args(argv)
    import torch

    from sne_plugin.pretrained import PRETRAINED_DIR, load_pretrained

    torch.set_num_threads(1)
    out = Path(args.out) if args.out else PRETRAINED_DIR
    if args.what == "cv":
        for fold, cv_rows in cross_validate(meta_zoos(args.meta, args.wide)).items():
            for variant, taus in cv_rows.items():
                cells = "  ".join(f"e{k}:{v:.3f}" for k, v in taus.items())
                print(f"{fold:22s} {variant:14s} {cells}", flush=True)
        return 0
    if args.what == "cv-curve":
        for fold, by_method in cross_validate_curve(meta_zoos(args.meta)).items():
            for method, per_epoch in by_method.items():
                cells = "  ".join(f"e{k}:{v:.3f}" for k, v in per_epoch.items())
                mean = np.mean(list(per_epoch.values()))
                print(f"{fold:28s} {method:18s} {cells}  mean {mean:.3f}", flush=True)
        return 0
    if args.what == "fit":
        zoos = meta_zoos(args.meta)
        if not zoos:
            raise SystemExit(f"no complete zoo under {args.meta}: build the meta-zoo first")
        predictor = fit_predictor(
            zoos,
            model=args.model,
            seed=args.seed,
            max_samples=args.max_samples,
            shrink=args.shrink,
            curve_degree=args.curve_degree,
        )
        predictor.save(out)
        print(json.dumps(predictor.info, indent=1))
        return 0
    predictor = load_pretrained(out)
    result = evaluate(predictor, args.held_out)
    for name, rows in result.items():
        for method, taus in rows.items():
            cells = "  ".join(f"e{k}:{v:.3f}" for k, v in taus.items())
            print(f"{name:16s} {method:10s} {cells}")
    return 0


def cross_validate(
    zoos: Sequence[Any],
    shrinks: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    epochs: Sequence[int] = (1, 2, 4),
    seed: int = 0,
) -> dict[str, dict[str, dict[int, float]]]:
    """Leave-out folds of the meta-zoo (by dataset, and CNNs against MLPs): mean tau per
    epoch of ``rank_now + shrink * correction`` on the left-out zoos, each ranked whole.
    Corrections: ``mlp`` (the shipped :class:`~sne_plugin.wstats.WeightStatsModel`),
    ``ranked`` (the same on weight statistics ranked among peers), ``forest`` (extremely
    randomized trees on the weight statistics and the curve features, the correction
    ``SNERegressor(stats_boost=True)`` found strongest across datasets and architectures);
    ``forest-direct``: the forest fitted on the target itself, its prediction the score;
    ``spectral``: the forest with the singular values' summary
    (:func:`~sne_plugin.encoder.stats.spectral_summary`) beside the weight statistics.

    This is where the correction's weight is chosen: on the meta-zoo, never on a held-out
    search."""

    from sne_plugin.wstats import WeightStatsModel

    folds = _folds(zoos)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for name, test_mask in folds.items():
        train = [z for z, t in zip(zoos, test_mask) if not t]
        test = [z for z, t in zip(zoos, test_mask) if t]
        if not train or not test:
            continue
        tr = training_samples(train, (1, 2, 4, 8), seed)
        model = WeightStatsModel(random_state=seed)
        z_train = model.transform(tr.nets)  # weight summaries, once for every correction
        residual = tr.target - np.nan_to_num(tr.side[:, 0], nan=0.5)
        model.fit_summaries(z_train, residual, tr.side)
        te = Samples.concat(
            [
                zoo_samples(
                    z,
                    epochs,
                    group_base=100 * i,
                    rng=rng,
                    min_peers=len(z),
                    hide_progress=0.0,
                    with_weights=True,
                )
                for i, z in enumerate(test)
            ]
        )
        z_test = model.transform(te.nets)
        correction = model.predict_embedded(z_test, te.side)
        base = np.nan_to_num(te.side[:, 0], nan=0.5)
        out[name] = {
            f"mlp {a:g}": held_out_scores(te, _const(base + a * correction)) for a in shrinks
        }
        # the same with every weight statistic ranked among the row's peers (scale-free)
        ranked = WeightStatsModel(random_state=seed)
        z_tr = peer_ranks(z_train, tr.group * 1000 + tr.peers)
        ranked.fit_summaries(z_tr, residual, tr.side)
        z_te = peer_ranks(z_test, te.group * 1000 + te.peers)
        corr_r = ranked.predict_embedded(z_te, te.side)
        for a in shrinks[1:]:
            out[name][f"ranked {a:g}"] = held_out_scores(te, _const(base + a * corr_r))
        x_tr = np.c_[z_train, tr.side]
        x_te = np.c_[z_test, te.side]
        corr_f = _forest_fit_predict(x_tr, residual, x_te, seed)
        for a in shrinks[1:]:
            out[name][f"forest {a:g}"] = held_out_scores(te, _const(base + a * corr_f))
        direct = _forest_fit_predict(x_tr, tr.target, x_te, seed)
        out[name]["forest-direct"] = held_out_scores(te, _const(direct))
        # the forest again, the singular values' summary beside the weight statistics
        x_tr, x_te = _with_spectra(x_tr, tr.nets), _with_spectra(x_te, te.nets)
        corr_s = _forest_fit_predict(x_tr, residual, x_te, seed)
        for a in shrinks[1:]:
            out[name][f"spectral {a:g}"] = held_out_scores(te, _const(base + a * corr_s))
    return out


def _forest_fit_predict(
    x_train: np.ndarray, target: np.ndarray, x_test: np.ndarray, seed: int
) -> np.ndarray:
    """The correction's forest (100 trees, 5 samples a leaf, at most 256 leaves) fitted on
    ``x_train`` and its prediction for ``x_test``; missing values as the training median."""
    from sklearn.ensemble import ExtraTreesRegressor

    fill = np.nan_to_num(np.nanmedian(x_train, axis=0))
    forest = ExtraTreesRegressor(
        min_samples_leaf=5, max_leaf_nodes=256, random_state=seed, n_jobs=1
    )
    forest.fit(np.where(np.isnan(x_train), fill, x_train), target)
    return np.asarray(forest.predict(np.where(np.isnan(x_test), fill, x_test)))


def _with_spectra(x: np.ndarray, nets: Sequence[NetworkWeights] | None) -> np.ndarray:
    """``x`` with each network's :func:`~sne_plugin.encoder.stats.spectral_summary` after."""
    from sne_plugin.encoder.stats import spectral_summaries

    assert nets is not None, "samples drawn without their weights"
    return np.c_[x, spectral_summaries([n.spec for n in nets], [n.flatten() for n in nets])]


def _const(values: np.ndarray) -> Callable[[Samples], np.ndarray]:
    return lambda _: values


def peer_ranks(z: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each column of ``z`` as percentile ranks within each group of rows."""
    out = np.empty_like(z, dtype=np.float64)
    for g in np.unique(groups):
        m = groups == g
        out[m] = np.column_stack([percentile_ranks(col) for col in z[m].T])
    return out


if __name__ == "__main__":
    import sys

    sys.exit(main())
