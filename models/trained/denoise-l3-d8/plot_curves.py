"""Combine the training records of the KD ablation into curves.csv and plot curves.png.

Usage: .venv/bin/python models/trained/denoise-l3-d8/plot_curves.py RUN=DIR ...
where each DIR is a `spikerc train --out` folder (its curve.csv, or state/progress.json for a
run stopped early). Needs matplotlib (`.venv/bin/pip install matplotlib`).
"""
import csv, json, os, sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

here = os.path.dirname(os.path.abspath(__file__))
rows = []
for arg in sys.argv[1:]:
    run, d = arg.split("=", 1)
    if os.path.exists(os.path.join(d, "curve.csv")):
        with open(os.path.join(d, "curve.csv")) as f:
            recs = list(csv.DictReader(f))
    else:
        recs = json.load(open(os.path.join(d, "state", "progress.json")))["curve"]
    for r in recs:
        rows.append({"run": run, "phase": r["phase"], "step": int(r["step"]), "lr": float(r["lr"]),
                     "loss": float("nan") if r["loss"] in (None, "NaN") else float(r["loss"]),
                     "val_psnr": float(r["val_psnr"]), "wall_s": float(r["wall_s"])})
with open(os.path.join(here, "curves.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "phase", "step", "lr", "loss", "val_psnr", "wall_s"])
    w.writeheader()
    for r in rows:
        w.writerow({**r, "lr": f"{r['lr']:.4e}", "loss": f"{r['loss']:.5f}", "val_psnr": f"{r['val_psnr']:.3f}", "wall_s": f"{r['wall_s']:.1f}"})

fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
seen = set()
for r in rows:
    seen.add((r["run"], r["phase"]))
for run, phase in sorted(seen):
    pts = [(r["step"], r["val_psnr"]) for r in rows if r["run"] == run and r["phase"] == phase]
    label = "ANN teacher (ReLU twin, T=1)" if phase == "teacher" else run
    ax.plot(*zip(*pts), marker="o", ms=3, ls="--" if phase == "teacher" else "-", label=label)
ax.set_xlabel("training step (batch 8, 64x64 patches)")
ax.set_ylabel("validation PSNR (dB), 4 CBSD68 crops, sigma 25")
ax.set_title("SpikerIR L=3 dim=8 (95k params): H-KD vs no-KD")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(here, "curves.png"))
print("wrote curves.csv and curves.png with", len(rows), "rows")
