"""toy25.png (generator samples and the discriminator's output D(x, t=0) over training) and the
Fashion-MNIST figures (T, r_d and FD over training; grids; nearest training images)."""
from __future__ import annotations

import pathlib

import matplotlib  # this module is imported only when the pipeline plots
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D


def plot_toy25(path: pathlib.Path, snapshots: dict, runs, means: np.ndarray, max_cols: int = 6):
    """One pair of rows per run: samples (EMA generator) over the training snapshots, then
    sigmoid(D(x, 0)) on a grid with the modes marked; the last column holds the final samples."""
    matplotlib.use("Agg")  # files only, no display

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
    titles = {"vanilla": "vanilla GAN", "diffusion_gan": "Diffusion-GAN"}
    image = None
    for r, (name, snaps, final) in enumerate(rows):
        label = titles.get(name, name)
        for c in range(cols):
            ax_s, ax_d = axes[2 * r, c], axes[2 * r + 1, c]
            for ax in (ax_s, ax_d):
                ax.tick_params(labelsize=5)
            if c < len(snaps):
                s = snaps[c]
                lim = float(s["lim"])
                step = files_step(s)
                ax_s.scatter(s["samples"][:, 0], s["samples"][:, 1], s=1, alpha=0.4,
                             label="generator samples")
                ax_s.scatter(means[:, 0], means[:, 1], s=6, c="r", marker="x",
                             label="the 25 modes")
                ax_s.set_xlim(-lim, lim), ax_s.set_ylim(-lim, lim)
                ax_s.set_title(f"{label}, step {step}\ndiffusion steps T = {int(s['T'])}",
                               fontsize=7)
                prob = 1 / (1 + np.exp(-s["d_logits"]))
                image = ax_d.imshow(prob, origin="lower", extent=(-lim, lim, -lim, lim), vmin=0,
                                    vmax=1, cmap="viridis")
                ax_d.scatter(means[:, 0], means[:, 1], s=4, c="r", marker="x")
                ax_d.set_title(f"{label}: D(x, t = 0)", fontsize=7)
                if c == 0:
                    ax_s.set_ylabel("x2", fontsize=7)
                    ax_d.set_ylabel("x2", fontsize=7)
                    if r == 0:
                        ax_s.legend(handles=[
                            Line2D([], [], ls="", marker="o", ms=3, label="generator samples"),
                            Line2D([], [], ls="", marker="x", ms=3, c="r",
                                   label="the 25 modes")], fontsize=5, loc="lower left")
                ax_d.set_xlabel("x1", fontsize=7)
            elif c == cols - 1:
                lim = float(np.abs(means).max() + 2.0)
                ax_s.scatter(final[:, 0], final[:, 1], s=1, alpha=0.3)
                ax_s.scatter(means[:, 0], means[:, 1], s=6, c="r", marker="x")
                ax_s.set_xlim(-lim, lim), ax_s.set_ylim(-lim, lim)
                ax_s.set_title(f"{label}: final EMA generator\n({len(final)} samples)",
                               fontsize=7)
                ax_s.set_xlabel("x1", fontsize=7)
                ax_d.axis("off")
            else:
                ax_s.axis("off"), ax_d.axis("off")
    fig.suptitle("Diffusion-GAN vs vanilla GAN on 25 Gaussians:\nsamples over training (upper "
                 "row of each pair) and the discriminator's probability of 'real' (lower row)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.9, 0.96))
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes((0.92, 0.15, 0.015, 0.7)))
        bar.set_label("sigmoid D(x, t=0): probability that x is real data", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def files_step(snap) -> int:
    return int(snap["step"]) if "step" in snap else -1


RUN_TITLES = {"vanilla": "vanilla GAN", "diffusion_gan": "Diffusion-GAN"}


def plot_fashion(workdir: pathlib.Path, results: dict, panels: dict, config) -> None:
    """training.png (per subset: T; r_d of both runs with the d_target line; FD over training
    with the real-vs-real floor and the training subset's own FD),
    samples_<run>_<n>.png grids, and nearest_<n>.png (samples above their nearest training
    images, the memorisation check)."""
    from dg_jax.experiments.diffusion_gan.images import save_grid  # noqa: PLC0415

    matplotlib.use("Agg")
    subsets = list(results["subsets"])
    fig, axes = plt.subplots(3, len(subsets), figsize=(4.5 * len(subsets), 9), squeeze=False)
    for c, n in enumerate(subsets):
        per = results["subsets"][n]
        for r in config.runs:
            m, label = per[r], RUN_TITLES.get(r, r)
            traj = m["trajectory"]
            if r == "diffusion_gan":
                axes[0, c].plot(traj["step"], traj["T"], label=label)
            axes[1, c].plot(traj["step"], traj["r_d"], label=label)
            curve = m["curve"]
            axes[2, c].plot([p["step"] for p in curve], [p["fd"] for p in curve], marker="o",
                            ms=3, label=f"{label} (final {m['fd']:.2f})")
        axes[0, c].set_title(f"{n} training images: diffusion steps T", fontsize=9)
        axes[0, c].set_ylabel("T")
        axes[1, c].axhline(results["d_target"], color="k", ls="--", lw=1,
                           label=f"d_target {results['d_target']}")
        axes[1, c].set_title("r_d = mean sign(D(real)) (overfitting)", fontsize=9)
        axes[1, c].set_ylabel("r_d")
        axes[2, c].axhline(results["real_floor"], color="gray", ls=":", lw=1,
                           label=f"real-vs-real floor {results['real_floor']:.2f}")
        if "memorisation" in per:
            axes[2, c].axhline(per["memorisation"]["fd"], color="tab:red", ls="--", lw=1,
                               label=f"the {n} training images {per['memorisation']['fd']:.2f}")
        axes[2, c].set_title("FD over training (EMA generator)", fontsize=9)
        axes[2, c].set_ylabel("FD (Fashion-MNIST CNN features)")
        axes[2, c].set_yscale("log")
        for ax in axes[:, c]:
            ax.set_xlabel("training step")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(workdir / "training.png", dpi=110)
    plt.close(fig)
    for n in subsets:
        names = [f"{r}_{n}" for r in config.runs if f"{r}_{n}" in panels]
        for name in names:
            save_grid(workdir / f"samples_{name}.png", panels[name][0])
        cols = max(len(panels[name][1]) for name in names)
        fig, axes = plt.subplots(2 * len(names), cols, figsize=(1.2 * cols, 2.6 * len(names)),
                                 squeeze=False)
        for i, name in enumerate(names):
            _, samples, nearest = panels[name]
            for j in range(cols):
                for k, (img, what) in enumerate(((samples, "sample"), (nearest, "nearest"))):
                    ax = axes[2 * i + k, j]
                    ax.axis("off")
                    if j < len(img):
                        ax.imshow(img[j, ..., 0], cmap="gray", vmin=-1, vmax=1)
                    if j == 0:
                        ax.set_title(f"{RUN_TITLES.get(name.rsplit('_', 1)[0], name)}: {what}",
                                     fontsize=7, loc="left")
        fig.suptitle(f"{n} training images: samples above their nearest training image (L2)",
                     fontsize=8)
        fig.savefig(workdir / f"nearest_{n}.png", dpi=110)
        plt.close(fig)

