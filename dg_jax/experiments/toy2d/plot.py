"""toy2d.png: the four samplers' particles at a few noise levels, and the learned vs exact
log density ratio log(p_r^tau / p_g^tau) at a few VP times."""
from __future__ import annotations

import pathlib

import jax.numpy as jnp
import matplotlib  # this module is imported only when the pipeline plots
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D


def plot_toy2d(path: pathlib.Path, trajectories: dict, sigmas, config, real, log_ratio_pair,
               disc, disc_params) -> None:
    """`log_ratio_pair(disc_params, x, tau)` -> (learned, exact) log ratios at points x."""
    matplotlib.use("Agg")  # files only, no display

    plot_sigmas = list(config.eval.plot_sigmas)
    taus = list(config.eval.plot_taus)
    ncols = max(len(plot_sigmas), 2 * len(taus))
    rows = list(trajectories)
    fig, axes = plt.subplots(len(rows) + 1, ncols, figsize=(2.6 * ncols, 2.6 * (len(rows) + 1)),
                             squeeze=False)
    after = np.asarray(sigmas[1:])  # noise level of the state after each step
    lim = 3.5
    labels = {"wrong_score": "wrong score (p_g)", "dg": "wrong score + DG",
              "exact_correction": "wrong score + exact correction", "true_score": "true score (p_r)"}
    for r, name in enumerate(rows):
        traj = trajectories[name]
        for c, s in enumerate(plot_sigmas):
            i = int(np.argmin(np.abs(after - s)))
            ax = axes[r, c]
            ax.scatter(traj[i, :, 0], traj[i, :, 1], s=1, alpha=0.3, label="samples")
            ax.scatter(np.asarray(real.means)[:, 0], np.asarray(real.means)[:, 1], s=14,
                       c="red", marker="x", label="modes of p_r (data)")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"{labels.get(name, name)}\nnoise level sigma = {after[i]:.3g}",
                         fontsize=8)
            ax.tick_params(labelsize=6)
            if c == 0:
                ax.set_ylabel("x2", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("x1", fontsize=8)
            if r == 0 and c == 0:
                ax.legend(handles=[Line2D([], [], ls="", marker="o", ms=3, alpha=0.6,
                                          label="samples"),
                                   Line2D([], [], ls="", marker="x", ms=4, c="red",
                                          label="modes of p_r (data)")],
                          fontsize=6, loc="lower left")
        for c in range(len(plot_sigmas), ncols):
            axes[r, c].axis("off")

    _, process, _ = disc
    g = np.linspace(-lim, lim, 120)
    xx, yy = np.meshgrid(g, g)
    grid = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
    for j, tau in enumerate(taus):
        learned, exact = (np.asarray(v).reshape(xx.shape)
                          for v in log_ratio_pair(disc_params, grid, jnp.float32(tau)))
        vmax = float(np.percentile(np.abs(exact), 95)) or 1.0
        sigma_tau = float(process.sigma(jnp.asarray(tau)))
        for k, (title, img) in enumerate((("learned (discriminator logit)", learned),
                                          ("exact", exact))):
            ax = axes[len(rows), 2 * j + k]
            im = ax.imshow(img, origin="lower", extent=(-lim, lim, -lim, lim), cmap="RdBu_r",
                           vmin=-vmax, vmax=vmax)
            ax.set_title(f"{title} log ratio\nVP time tau = {tau} (sigma = {sigma_tau:.3g})",
                         fontsize=8)
            ax.set_xlabel("x1", fontsize=8)
            ax.set_ylabel("x2", fontsize=8)
            ax.tick_params(labelsize=6)
            bar = fig.colorbar(im, ax=ax, fraction=0.046)
            bar.set_label("log p_r^tau(x) / p_g^tau(x)", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    for c in range(2 * len(taus), ncols):
        axes[len(rows), c].axis("off")
    fig.suptitle("Discriminator Guidance in 2-D: each sampler's particles as the noise level sigma "
                 "falls to 0 (same latents in every row),\nand the log density ratio the "
                 "discriminator learned vs the exact one (tau: the discriminator's VP diffusion "
                 "time)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    tmp = pathlib.Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
