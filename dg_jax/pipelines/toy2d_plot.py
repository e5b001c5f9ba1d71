"""toy2d.png: the four samplers' particles at a few noise levels, and the learned vs exact
log density ratio log(p_r^tau / p_g^tau) at a few VP times."""
from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np


def plot_toy2d(path: pathlib.Path, trajectories: dict, sigmas, config, real, wrong, disc,
               disc_params) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dg_jax.diffusion.processes import sigma_to_vp
    from dg_jax.toy.gmm import log_ratio

    plot_sigmas = list(config.eval.plot_sigmas)
    taus = list(config.eval.plot_taus)
    ncols = max(len(plot_sigmas), 2 * len(taus))
    rows = list(trajectories)
    fig, axes = plt.subplots(len(rows) + 1, ncols, figsize=(2.6 * ncols, 2.6 * (len(rows) + 1)),
                             squeeze=False)
    after = np.asarray(sigmas[1:])  # noise level of the state after each step
    lim = 3.5
    for r, name in enumerate(rows):
        traj = trajectories[name]
        for c, s in enumerate(plot_sigmas):
            i = int(np.argmin(np.abs(after - s)))
            ax = axes[r, c]
            ax.scatter(traj[i, :, 0], traj[i, :, 1], s=1, alpha=0.3)
            ax.scatter(np.asarray(real.means)[:, 0], np.asarray(real.means)[:, 1], s=12,
                       c="red", marker="x")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, sigma={after[i]:.3g}", fontsize=8)
        for c in range(len(plot_sigmas), ncols):
            axes[r, c].axis("off")

    _, process, logit_fn = disc
    g = np.linspace(-lim, lim, 120)
    xx, yy = np.meshgrid(g, g)
    grid = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
    for j, tau in enumerate(taus):
        tau_arr = jnp.full((grid.shape[0],), tau)
        sigma = process.sigma(tau_arr)
        x_vp, _, _ = sigma_to_vp(sigma, grid, process)
        learned = np.asarray(logit_fn(disc_params, x_vp, tau_arr)).reshape(xx.shape)
        exact = np.asarray(log_ratio(real, wrong)(grid, sigma)).reshape(xx.shape)
        vmax = float(np.percentile(np.abs(exact), 95)) or 1.0
        for k, (title, img) in enumerate((("learned", learned), ("exact", exact))):
            ax = axes[len(rows), 2 * j + k]
            im = ax.imshow(img, origin="lower", extent=(-lim, lim, -lim, lim), cmap="RdBu_r",
                           vmin=-vmax, vmax=vmax)
            ax.set_title(f"{title} log ratio, tau={tau}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    for c in range(2 * len(taus), ncols):
        axes[len(rows), c].axis("off")
    fig.tight_layout()
    tmp = pathlib.Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
