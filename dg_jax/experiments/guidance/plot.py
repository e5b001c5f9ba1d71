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


def plot_tradeoff(path: pathlib.Path, results: dict, grids: dict, num_classes: int,
                  title: str = "") -> None:
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
    if "scorer_test_accuracy" in results:  # the same scorer on real images: a reference
        for ax in axes[0, :2]:
            ax.axhline(results["scorer_test_accuracy"], color="gray", ls=":", lw=1,
                       label=f"real test images {results['scorer_test_accuracy']:.3f}")
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cfg_dg(path: pathlib.Path, results: dict, grids: dict, num_classes: int) -> None:
    """cfg_dg.png: FD, accuracy and precision / recall against DG's weight on top of CFG at
    results['cfg_weight'], the discriminator's accuracy by t, and the first samples (two per
    class) without and with DG (its largest weight) from the same latents."""
    matplotlib.use("Agg")  # files only, no display

    rows = results["rows"]
    w = [r["weight"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    axes[0, 0].plot(w, [r["fd"] for r in rows], "o-")
    axes[0, 0].set(xlabel="DG weight", ylabel="Fréchet distance",
                   title=f"FD, CFG w={results['cfg_weight']:g} + DG")
    axes[0, 1].plot(w, [r["accuracy"] for r in rows], "o-", label="accuracy")
    axes[0, 1].plot(w, [r["precision"] for r in rows], "s--", label="precision")
    axes[0, 1].plot(w, [r["recall"] for r in rows], "^--", label="recall")
    axes[0, 1].set(xlabel="DG weight", title="class accuracy, precision, recall (k = 3)")
    axes[0, 1].legend()
    by_t = results["disc_accuracy_by_t"]
    axes[0, 2].plot([r["t"] for r in by_t], [r["accuracy"] for r in by_t], "o-")
    axes[0, 2].axhline(0.5, color="gray", lw=0.8)
    axes[0, 2].set(xlabel="diffusion step t", ylabel="accuracy",
                   title="discriminator accuracy (training images)")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.axis("off")
    for ax, wi in zip(axes[1], (min(w), max(w))):
        ax.imshow(_tile(grids[("cfg_dg", wi)], num_classes), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"DG w={wi:g} (columns: class 0..{num_classes - 1})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
