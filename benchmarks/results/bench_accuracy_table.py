"""Per-seed Kendall tau from `sne bench` log lines -> markdown (incomplete runs included)."""
import re, sys, collections, numpy as np
logs = sys.argv[1:]
tau = collections.defaultdict(dict)   # (task, method) -> {seed: tau}
fit = collections.defaultdict(dict)
src = {}
for path in logs:
    for line in open(path):
        m = re.match(r"\[bench\] (\S+) seed (\d+) (\S+): tau ([-\d.]+) fit ([\d.]+)s", line)
        if m:
            t, s, me, v, f = m.groups()
            tau[(t, me)].setdefault(int(s), float(v)); fit[(t, me)].setdefault(int(s), float(f))
TASKS = ["in_dist", "cross_dataset_font_digits", "cross_arch_cnn_w8", "early_e2"]
METHODS = [("sne", "SNE (default)"), ("sne_hybrid", "SNE + stats branch"), ("sne_rank", "SNE pairwise"),
           ("statnn", "StatNN"), ("hparams", "Hyperparameters (HGB)"), ("curve", "Learning curve")]
def fmt(d, seeds):
    v = [d[s] for s in seeds if s in d]
    return "-" if not v else (f"{np.mean(v):.3f}" + (f" ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else "") + f" (n={len(v)})")
for block, seeds in (("seeds 0-2", [0, 1, 2]), ("seeds 3-5", [3, 4, 5])):
    print(f"\n#### Mean tau, {block} (n = seeds that finished)\n")
    print("| task | " + " | ".join(l for _, l in METHODS) + " |")
    print("|---" * (len(METHODS) + 1) + "|")
    for t in TASKS:
        print(f"| {t} | " + " | ".join(fmt(tau.get((t, m), {}), seeds) for m, _ in METHODS) + " |")
    print(f"\n#### Per seed, {block}\n")
    print("| task | seed | " + " | ".join(l for _, l in METHODS) + " |")
    print("|---" * (len(METHODS) + 2) + "|")
    for t in TASKS:
        for s in seeds:
            cells = [f"{tau[(t, m)][s]:.3f}" if s in tau.get((t, m), {}) else "-" for m, _ in METHODS]
            print(f"| {t} | {s} | " + " | ".join(cells) + " |")
    print(f"\n#### Paired difference to SNE (default), same task and seed, {block}\n")
    print("| task | SNE + stats branch - SNE | SNE pairwise - SNE | SNE + stats branch - StatNN |")
    print("|---|---|---|---|")
    for t in TASKS:
        row = []
        for a, b in (("sne_hybrid", "sne"), ("sne_rank", "sne"), ("sne_hybrid", "statnn")):
            da, db = tau.get((t, a), {}), tau.get((t, b), {})
            d = [da[s] - db[s] for s in seeds if s in da and s in db]
            row.append("-" if not d else f"{np.mean(d):+.3f} (n={len(d)}: " + ", ".join(f"{x:+.3f}" for x in d) + ")")
        print(f"| {t} | " + " | ".join(row) + " |")
print("\nFit seconds (wall, on the loaded machine), per method, mean over what finished:", {
    m: round(float(np.mean([v for (t, me), d in fit.items() if me == m for v in d.values()])), 1)
    for m, _ in METHODS if any(me == m for (_, me) in fit)})
