"""The pretraining meta-zoo and the held-out searches of the pretrained predictor.

    python -m sne_plugin.research.metazoo build --root runs/metazoo     # resumable
    python -m sne_plugin.research.metazoo held-out --root runs/heldout  # the searches
    python -m sne_plugin.research.metazoo info --root runs/metazoo

The meta-zoo (:data:`META_ZOO`) is one zoo per (architecture, dataset): MLPs of four
depths and widths and CNNs of varied width, depth, kernel size and BatchNorm, on the
bundled digits and the font-rendered digits, in the ``"meta"`` hyperparameter space (SGD,
Adam, AdamW, RMSprop; constant, cosine, warm-up-then-cosine and step schedules; small and
large rates; label smoothing, weight decay, dropout, batch sizes). Each model keeps its
weights at epochs 1, 2, 4, 8 and its last, and its test accuracy after every epoch (the
validation curve a search would see).

The held-out searches (:data:`HELD_OUT`) differ from every zoo of the meta-zoo in dataset
(procedural shapes, font-rendered letters) and in architecture family (residual CNN, tiny
ViT, 1-D convolutions), and are never used to pretrain or to choose a setting. Each is one
zoo of ``seeds x trials`` models of one fixed epoch budget with weights after every epoch;
seed ``s`` of a search is its models ``s * trials ... (s + 1) * trials - 1``, a random
search of that space.

Each zoo is built by :func:`sne_plugin.research.zoo.build_zoo` and resumes where it
stopped; ``cost.json`` in the root records the seconds each zoo took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HELD_OUT", "META_ZOO", "META_ZOO_WIDE", "HeldOutSearch", "ZooSpec", "build_all"]


@dataclass(frozen=True)
class ZooSpec:
    """One zoo: what :func:`~sne_plugin.research.zoo.build_zoo` is called with."""

    arch: str
    dataset: str
    n_models: int
    epochs: tuple[int, ...] = (1, 2, 4, 8)
    max_epochs: int = 12
    seed: int = 0
    activations: tuple[str, ...] = ("relu", "tanh", "gelu", "sigmoid")
    dataset_args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.dataset}-s{self.seed}"


_META_ARCHS = (
    "small_cnn",
    "cnn_w8",
    "cnn_w24",
    "cnn_d2",
    "cnn_d4",
    "cnn_k5",
    "mlp",
    "mlp_w16",
    "mlp_w64",
    "mlp_d1",
    "mlp_d3",
)
META_ZOO: tuple[ZooSpec, ...] = tuple(
    [
        ZooSpec(a, d, 96, seed=i)
        for i, d in enumerate(("digits", "font_digits"))
        for a in _META_ARCHS
    ]
    + [ZooSpec("cnn_bn", d, 32, seed=i) for i, d in enumerate(("digits", "font_digits"))]
)
"""The pretraining meta-zoo: 24 zoos, 2,176 models."""

META_ZOO_WIDE: tuple[ZooSpec, ...] = META_ZOO + tuple(
    [ZooSpec(a, d, 64, seed=i) for i, d in ((2, "gratings"), (3, "mixtures")) for a in _META_ARCHS]
    + [ZooSpec("cnn_bn", d, 32, seed=i) for i, d in ((2, "gratings"), (3, "mixtures"))]
)
"""The meta-zoo and two more generated datasets (gratings, Gaussian mixtures), both unlike the
held-out searches' shapes and letters: 48 zoos, 3,648 models (``--set wide``)."""


@dataclass(frozen=True)
class HeldOutSearch:
    """A search space never seen in pretraining, recorded as ``seeds`` random searches."""

    name: str
    arch: str
    dataset: str
    epochs: int
    trials: int
    seeds: int
    n_samples: int  # train + test samples of the dataset
    description: str

    def spec(self) -> ZooSpec:
        return ZooSpec(
            self.arch,
            self.dataset,
            self.trials * self.seeds,
            epochs=tuple(range(1, self.epochs + 1)),
            max_epochs=self.epochs,
            seed=1001,
            dataset_args={"n": self.n_samples},
        )


HELD_OUT: tuple[HeldOutSearch, ...] = (
    HeldOutSearch(
        "conv1d-letters",
        "conv1d",
        "font_letters",
        epochs=12,
        trials=30,
        seeds=10,
        n_samples=2000,
        description="1-D convolutions over image columns on font-rendered letters",
    ),
    HeldOutSearch(
        "resnet-shapes",
        "resnet_tiny",
        "shapes",
        epochs=10,
        trials=24,
        seeds=10,
        n_samples=2000,
        description="residual CNN on procedural shapes; warm-up-then-cosine and cosine "
        "schedules among the four, where early accuracy misleads",
    ),
    HeldOutSearch(
        "vit-letters",
        "vit_tiny",
        "font_letters",
        epochs=8,
        trials=16,
        seeds=10,
        n_samples=1500,
        description="tiny ViT (attention) on font-rendered letters",
    ),
)
"""The held-out searches (never used to pretrain or to choose a setting)."""


def build_all(
    root: str | os.PathLike[str],
    specs: tuple[ZooSpec, ...],
    *,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, float]:
    """Build (or resume) every zoo of ``specs`` under ``root``; returns seconds per zoo,
    also written (accumulated over resumes) to ``root/cost.json``."""
    from sne_plugin.research.zoo import build_zoo

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cost_path = root / "cost.json"
    cost: dict[str, float] = json.loads(cost_path.read_text()) if cost_path.exists() else {}
    for spec in specs:
        t0 = time.perf_counter()
        build_zoo(
            root / spec.name,
            arch=spec.arch,
            dataset=spec.dataset,
            n_models=spec.n_models,
            epochs=spec.epochs,
            seed=spec.seed,
            workers=workers,
            progress=progress,
            max_epochs=spec.max_epochs,
            dataset_args=spec.dataset_args,
            activations=spec.activations,
            space="meta",
        )
        cost[spec.name] = cost.get(spec.name, 0.0) + time.perf_counter() - t0
        cost_path.write_text(json.dumps(cost, indent=1, sort_keys=True))
    return cost


def _info(root: Path, specs: tuple[ZooSpec, ...]) -> None:
    from sne_plugin.research.zoo.store import read_records

    cost_path = root / "cost.json"
    cost = json.loads(cost_path.read_text()) if cost_path.exists() else {}
    total = 0
    for spec in specs:
        folder = root / spec.name
        n = len(read_records(folder))
        total += n
        print(f"{spec.name:32s} {n:5d}/{spec.n_models:<5d} {cost.get(spec.name, 0.0):8.0f} s")
    print(f"{'total':32s} {total:5d}        {sum(cost.values()):8.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sne_plugin.research.metazoo",
        description="Build the pretraining meta-zoo or the held-out searches (resumable).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("what", choices=["build", "held-out", "info", "info-held-out"])
    parser.add_argument("--root", default=None, help="folder (default runs/metazoo, runs/heldout)")
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument(
        "--set",
        default="meta",
        choices=["meta", "wide"],
        help="meta: META_ZOO; wide: META_ZOO_WIDE",
    )
    args = parser.parse_args(argv)
    held = args.what in ("held-out", "info-held-out")
    specs = tuple(s.spec() for s in HELD_OUT) if held else META_ZOO
    if not held and args.set == "wide":
        specs = META_ZOO_WIDE
    root = Path(args.root or ("runs/heldout" if held else "runs/metazoo"))
    if args.what.startswith("info"):
        _info(root, specs)
        return 0
    build_all(root, specs, workers=args.workers, progress=sys.stderr.isatty() or True)
    _info(root, specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
