"""guidance.png: the CG / CFG trade-offs (accuracy vs Fréchet distance, accuracy and FD vs
weight, precision vs recall) and, per method, the first samples (two per class) at the smallest
and largest weight."""
from __future__ import annotations

import pathlib

import matplotlib  # this module is imported only when the pipeline plots
import matplotlib.pyplot as plt
import numpy as np


def _tile(samples: np.ndarray, per_row: int) -> np.ndarray:
    n, h, w, _ = samples.shape
    rows = (n + per_row - 1) // per_row
    canvas = np.full((rows * (h + 1), per_row * (w + 1)), 255, np.uint8)
    for i, img in enumerate(samples[..., 0]):
        r, c = divmod(i, per_row)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    return canvas


def plot_tradeoff(path: pathlib.Path, results: dict, grids: dict, num_classes: int) -> None:
    matplotlib.use("Agg")  # files only, no display

    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    methods = [m for m in results if isinstance(results[m], list) and results[m]]
    colors = dict(zip(methods, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for method in methods:
        rows, color = results[method], colors[method]
        label = method.upper().replace("_", " ")
        w = [r["weight"] for r in rows]
        acc = [r["accuracy"] for r in rows]
        fd = [r["fd"] for r in rows]
        axes[0, 0].plot(fd, acc, "o-", color=color, label=label)
        for wi, f, a in zip(w, fd, acc):
            axes[0, 0].annotate(f"{wi:g}", (f, a), fontsize=7, color=color)
        axes[0, 1].plot(w, acc, "o-", color=color, label=label)
        axes[0, 2].plot(w, fd, "o-", color=color, label=label)
        if "precision" in rows[0]:
            prec, rec = [r["precision"] for r in rows], [r["recall"] for r in rows]
            axes[0, 3].plot(rec, prec, "o-", color=color, label=label)
            for wi, r_, p_ in zip(w, rec, prec):
                axes[0, 3].annotate(f"{wi:g}", (r_, p_), fontsize=7, color=color)
    axes[0, 0].set(xlabel="Fréchet distance (scorer features)", ylabel="accuracy",
                   title="trade-off (labels: weight)")
    axes[0, 1].set(xlabel="guidance weight", ylabel="accuracy", title="accuracy vs weight")
    axes[0, 2].set(xlabel="guidance weight", ylabel="Fréchet distance", title="FD vs weight")
    axes[0, 3].set(xlabel="recall", ylabel="precision", title="precision vs recall (k = 3)")
    for ax in axes[0]:
        ax.legend()
        ax.grid(alpha=0.3)
    panels = []
    for method in ("cg", "cfg"):  # the grids of CG with sweep.sampler and of CFG
        ws = sorted(w for m, w in grids if m == method)
        if ws:
            panels += [(method, ws[0]), (method, ws[-1])]
    for ax in axes[1]:
        ax.axis("off")
    for ax, key in zip(axes[1], panels):
        ax.imshow(_tile(grids[key], num_classes), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{key[0].upper()} w={key[1]:g} (columns: class 0..{num_classes - 1})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
