"""Per-seed Kendall tau from `sne bench` log lines -> markdown (incomplete runs included)."""

import collections
import re
import sys

import numpy as np

logs = sys.argv[1:]
tau = collections.defaultdict(dict)  # (task, method) -> {seed: tau}
fit = collections.defaultdict(dict)
for path in logs:
    with open(path) as file:
        lines = file.readlines()
    for line in lines:
        m = re.match(r"\[bench\] (\S+) seed (\d+) (\S+): tau ([-\d.]+) fit ([\d.]+)s", line)
        if m:
            t, s, me, v, f = m.groups()
            tau[(t, me)].setdefault(int(s), float(v))
            fit[(t, me)].setdefault(int(s), float(f))
TASKS = ["in_dist", "cross_dataset_font_digits", "cross_arch_cnn_w8", "early_e2"]
METHODS = [
    ("sne", "SNE (default)"),
    ("sne_hybrid", "SNE + stats branch"),
    ("sne_rank", "SNE pairwise"),
    ("statnn", "StatNN"),
    ("hparams", "Hyperparameters (HGB)"),
    ("curve", "Learning curve"),
]


def fmt(d, seeds):
    v = [d[s] for s in seeds if s in d]
    if not v:
        return "-"
    spread = f" ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else ""
    return f"{np.mean(v):.3f}{spread} (n={len(v)})"


for block, seeds in (("seeds 0-2", [0, 1, 2]), ("seeds 3-5", [3, 4, 5])):
    print(f"\n#### Mean tau, {block} (n = seeds that finished)\n")
    print("| task | " + " | ".join(label for _, label in METHODS) + " |")
    print("|---" * (len(METHODS) + 1) + "|")
    for t in TASKS:
        print(f"| {t} | " + " | ".join(fmt(tau.get((t, m), {}), seeds) for m, _ in METHODS) + " |")
    print(f"\n#### Per seed, {block}\n")
    print("| task | seed | " + " | ".join(label for _, label in METHODS) + " |")
    print("|---" * (len(METHODS) + 2) + "|")
    for t in TASKS:
        for s in seeds:
            got = [tau.get((t, m), {}) for m, _ in METHODS]
            cells = [f"{d[s]:.3f}" if s in d else "-" for d in got]
            print(f"| {t} | {s} | " + " | ".join(cells) + " |")
    print(f"\n#### Paired difference to SNE (default), same task and seed, {block}\n")
    print("| task | SNE + stats branch - SNE | SNE pairwise - SNE | SNE + stats branch - StatNN |")
    print("|---|---|---|---|")
    for t in TASKS:
        row = []
        for a, b in (("sne_hybrid", "sne"), ("sne_rank", "sne"), ("sne_hybrid", "statnn")):
            da, db = tau.get((t, a), {}), tau.get((t, b), {})
            d = [da[s] - db[s] for s in seeds if s in da and s in db]
            each = ", ".join(f"{x:+.3f}" for x in d)
            row.append(f"{np.mean(d):+.3f} (n={len(d)}: {each})" if d else "-")
        print(f"| {t} | " + " | ".join(row) + " |")
print(
    "\nFit seconds (wall, on the loaded machine), per method, mean over what finished:",
    {
        m: round(
            float(np.mean([v for (t, me), d in fit.items() if me == m for v in d.values()])), 1
        )
        for m, _ in METHODS
        if any(me == m for (_, me) in fit)
    },
)
