"""toy25.png: generator samples and the discriminator's output D(x, t=0) over training."""
from __future__ import annotations

import pathlib

import numpy as np


def plot_toy25(path: pathlib.Path, snapshots: dict, runs, means: np.ndarray, max_cols: int = 6):
    """One pair of rows per run: samples (EMA generator) over the training snapshots, then
    sigmoid(D(x, 0)) on a grid with the modes marked; the last column holds the final samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name in runs:
        files = list(snapshots[name])
        if len(files) > max_cols - 1:
            pick = np.linspace(0, len(files) - 1, max_cols - 1).round().astype(int)
            files = [files[i] for i in pick]
        rows.append((name, [np.load(f) for f in files], snapshots[name + "_final"]))
    cols = max(len(s) for _, s, _ in rows) + 1
    fig, axes = plt.subplots(2 * len(rows), cols, figsize=(2.2 * cols, 4.4 * len(rows)),
                             squeeze=False)
    for r, (name, snaps, final) in enumerate(rows):
        for c in range(cols):
            ax_s, ax_d = axes[2 * r, c], axes[2 * r + 1, c]
            for ax in (ax_s, ax_d):
                ax.set_xticks([]), ax.set_yticks([])
            if c < len(snaps):
                s = snaps[c]
                lim = float(s["lim"])
                step = files_step(s)
                ax_s.scatter(s["samples"][:, 0], s["samples"][:, 1], s=1, alpha=0.4)
                ax_s.scatter(means[:, 0], means[:, 1], s=6, c="r", marker="x")
                ax_s.set_xlim(-lim, lim), ax_s.set_ylim(-lim, lim)
                ax_s.set_title(f"{name} {step}\nT={int(s['T'])}", fontsize=7)
                prob = 1 / (1 + np.exp(-s["d_logits"]))
                ax_d.imshow(prob, origin="lower", extent=(-lim, lim, -lim, lim), vmin=0, vmax=1,
                            cmap="viridis")
                ax_d.scatter(means[:, 0], means[:, 1], s=4, c="r", marker="x")
                ax_d.set_title("sigmoid D(x, t=0)", fontsize=7)
            elif c == cols - 1:
                lim = float(np.abs(means).max() + 2.0)
                ax_s.scatter(final[:, 0], final[:, 1], s=1, alpha=0.3)
                ax_s.scatter(means[:, 0], means[:, 1], s=6, c="r", marker="x")
                ax_s.set_xlim(-lim, lim), ax_s.set_ylim(-lim, lim)
                ax_s.set_title(f"{name} final (10k)", fontsize=7)
                ax_d.axis("off")
            else:
                ax_s.axis("off"), ax_d.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def files_step(snap) -> int:
    return int(snap["step"]) if "step" in snap else -1
