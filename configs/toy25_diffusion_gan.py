"""Diffusion-GAN vs a vanilla GAN on 25 Gaussians (same MLP networks, steps and seeds).

Run (both GANs; see the README / report for the time on 2 CPU cores):
  python -m launch.main --config=configs/toy25_diffusion_gan.py --workdir=/tmp/dg_toy25
Smoke variant (28 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
  python -m launch.main --config=configs/toy25_diffusion_gan.py:smoke --workdir=/tmp/dg_toy25_smoke
Overrides, e.g. --config.train.num_steps=20000 --config.diffusion.noise_std=0.1.

Writes DIR/results.json ({'vanilla', 'diffusion_gan'} x {modes_covered, high_quality_fraction,
final_T, ...}; a mode counts when >= 1% of 10,000 samples lie within 3 std of it) and
DIR/toy25.png (samples and D(x, t=0) over training). Acceptance: Diffusion-GAN covers >= 24 of
25 modes with >= 80% high-quality samples with the default seed. The networks see the data
scaled by data.scale = 1/4 (so it lies in [-1, 1], the official code's pixel range).

Measured with this default config on 2026-12-02 (named rng streams), seed 0, 2 shared CPU
cores (18 min for both GANs at 50k steps):
  vanilla:        modes_covered 14/25, high_quality_fraction 0.9343
  diffusion_gan:  modes_covered 14/25, high_quality_fraction 0.9575, final_T 5
so the acceptance above does NOT hold at seed 0 with the current streams. With the earlier
random streams (2026-11-30) the same config gave 20/25 (0.9095) and 24/25 (0.9171): which modes
a GAN finds on this toy depends on the seed far more than on the diffusion; other seeds were not
run (each takes about 18 minutes). The logged r_d never went above 0.26 (d_target 0.6), so p
stayed <= 0.0005 and T at T_min = 5: any difference from vanilla comes from the small-T
diffusion noise (t_epl drawn from 1..5 plus zeros), not from T adapting. Earlier-stream runs
(not rerun): noise_std 0.05 (the official value) gave 15/25 and 0.9778 at 50k steps; d_target
0.0 (T climbed to 500) gave 13/25 and 0.7405 at 20k steps.

Where T does adapt: configs/fashion_diffusion_gan.py (500 Fashion-MNIST images, 2026-12-03).
There the vanilla discriminator overfits (r_d 0.81-0.85 over the last quarter, seeds 0-2) and
Diffusion-GAN's T climbs from 10 to 730-880 while its r_d stays at 0.54-0.58, next to
d_target 0.6; on this toy the discriminator never overfits, so T has nothing to answer.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_diffusion_gan import apply_smoke, get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.experiment = "toy25"
    config.data = dict(grid=5, spacing=2.0, std=0.05, scale=0.25)
    config.model = dict(backbone="mlp", z_dim=16, g_width=400, g_depth=4, d_width=200, d_depth=3)
    config.train.update(batch_size=128, num_steps=50000, g_lr=1e-3, d_lr=1e-3, b1=0.5,
                        r1_gamma=0.0, ema_kimg=10.0, checkpoint_every=5000)
    # Official defaults except the T range and sigma: 0.25 in the scaled space (1.0 in data
    # units, half the mode spacing); sigma = 0.05 gave 15/25 modes at 50k steps (see docstring).
    config.diffusion.noise_std = 0.25
    config.eval = dict(num_samples=10000, snapshot_every=10000)
    if arg.smoke:
        apply_smoke(config, num_steps=40, num_samples=2000, batch_size=64, r1_interval=16,
                    model=dict(g_width=32, d_width=32, g_depth=2, d_depth=2))
        config.diffusion.ada_kimg = 0.5
        config.eval.snapshot_every = 20
    return config
