"""Diffusion-GAN vs a vanilla GAN on limited Fashion-MNIST: fixed, seeded, class-balanced subsets
of 500 and 2,000 training images (32x32, zero-padded), the same DCGAN-style pair, steps, seeds,
optimiser, lazy R1 and EMA for both runs.

Run (Debian's dataset-fashion-mnist; both subsets, both runs, the evaluation network):
  apt-get install -y dataset-fashion-mnist
  python -m launch.main --config=configs/fashion_diffusion_gan.py --workdir=/tmp/fashion_dgan
Other seeds: --config.seed=1; several seeds can share the evaluation network's cache:
  --config.eval.classifier_cache=/tmp/fashion_eval_classifier
One subset only: --config.data.subset_sizes='(500,)'
Smoke variant (tiny networks, 40 steps; in the tests):
  python -m launch.main --config=configs/fashion_diffusion_gan.py:smoke --workdir=/tmp/fashion_dgan_smoke
Longer runs: --config=configs/fashion_diffusion_gan.py:steps=12000 (the FD curve points move
with it: every steps/8).

Writes DIR/results.json: real_floor, eval_network (the CNN's test accuracy), and per subset
('500', '2000') and run ('vanilla', 'diffusion_gan'): fd, precision, recall (10,000 EMA-generator
samples against the 10,000 test images, on the project's Fashion-MNIST CNN features), final_T,
final_p, r_d_last_quarter, the FD curve over training and the trajectories of T, p and r_d =
mean(sign(D(real))) (train-loop means over each log window); fd_ratio = diffusion_gan / vanilla;
memorisation = {fd, precision, recall} of the subset's own n images (what a generator that
reproduced its training images exactly would score).
PNGs: DIR/training.png (T; r_d of both runs with the d_target line; FD over training),
DIR/samples_<run>_<n>.png, DIR/nearest_<n>.png (samples above their nearest training image).

Backbone: the DCGAN pair (dg_jax.gan.models_dcgan), not the compact StyleGAN2 pair: at 32x32 on
2 CPU cores it is several times cheaper per step, which buys the steps a discriminator needs to
overfit 500 images; --config.model.backbone=stylegan2 runs the other (measured 2026-12-07,
seed 0, 500 images, alone on 2 cores: about 6 steps/s, and FD 207 on 2,000 samples after
1,000 vanilla steps, so it needs far more steps than this budget).

Settings from the official code that changed, and why: ada_kimg = 10 (official 100, sized for
millions of images: at batch 32 it moves p by 0.00128 per adjustment, so T would need the
whole run to cross its range once; 10 lets it cross in ~300 steps and then track). T_min 10 /
T_max 1000 are Diffusion-StyleGAN2's `Diffusion` defaults: with T_max 500 (the
Diffusion-ProjectedGAN range, measured 2026-12-02 at seed 0) T reached T_max by step 2,000 of
4,000 and r_d still rose to 0.72, so the range, not the rule, was the limit. Everything else is the official rule:
d_target 0.6, ada_interval 4, priority sampling of t (weights t - 1), noise_std 0.05, half of
t_epl zeros (half of the discriminator's inputs clean).

Acceptance (default config and seed): on 500 images the vanilla discriminator overfits (its r_d
well above 0.6), Diffusion-GAN's T leaves T_min and r_d stays within 0.1 of d_target over the
last quarter; FD(Diffusion-GAN) <= 0.85 FD(vanilla) on 500 images, and not worse on 2,000.

Measured with this default config on 2026-12-03 (2 CPU cores shared with other jobs; 35 min for
seed 0 with both subsets, 15-25 min for the 500-image subset alone at seeds 1 and 2):
  500 images     seed 0   seed 1   seed 2   mean (std)
  FD vanilla     20.45    24.38    20.29    21.71 (2.31)
  FD DGAN        19.45    25.14    22.09    22.23 (2.85)
  ratio          0.951    1.032    1.089    1.024 (0.069)
  r_d vanilla    0.850    0.813    0.827    (last quarter: the vanilla D overfits)
  r_d DGAN       0.580    0.553    0.540    (last quarter, d_target 0.6)
  final T        884      808      732      (from T_min 10)
  2,000 images, seed 0: FD vanilla 9.26, DGAN 9.36 (ratio 1.011), final T 23.
Real-vs-real floor 0.76 / 0.53 / 0.65. So the mechanism acceptance holds at all three seeds
(vanilla r_d well above 0.6, T leaves T_min, DGAN's r_d within 0.1 of d_target), but the FD
acceptance (ratio <= 0.85 on 500, <= 1 on 2,000) does NOT: Diffusion-GAN lowers recall
(0.40 / 0.44 / 0.38 against 0.42 / 0.48 / 0.46) and FD ends about level.

Three times longer (measured 2026-12-07, eighth session, seed 0 only, 500 images,
--config=configs/fashion_diffusion_gan.py:steps=12000, 50 min on 2 CPU cores shared with 1-4
other jobs): FD vanilla 16.04 (precision 0.871, recall 0.324, r_d 0.922 over the last
quarter), Diffusion-GAN 16.34 (0.860, 0.322; r_d 0.655, T at T_max = 1000 from step ~7,600
on, p = 1), ratio 1.019; floor 0.74. The vanilla GAN does not degrade while its discriminator
overfits (FD on 2,000 samples every 1,500 steps: 18.0, 12.6, 14.6, 14.9, 14.8, 17.2, 15.0,
16.2), while Diffusion-GAN improves more slowly but is still improving at the end (27.1, 24.7,
21.0, 22.1, 23.9, 22.4, 19.9, 19.4); with T pinned at T_max its r_d stays above d_target, so
the range again limits the rule. Longer training alone does not reach the 0.85 ratio within
this budget. A wider range does not either (same day, seeds 0 / 1 / 2, 4000 steps,
--config.diffusion.t_max=2000): T ends at 800 / 774 / 723 and r_d tracks the target (0.592 /
0.529 / 0.557 over the last quarter), but FD is 18.19 / 24.69 / 20.57 against vanilla's 15.40
/ 21.34 / 20.36: ratio 1.116 +- 0.092 (1.181 / 1.157 / 1.011). All runs of the eighth session
used the evaluation network cached by configs/fashion_guidance.py
(test accuracy 0.8924, floor 0.737); the 2026-12-03 table's network differs (floor 0.76 at
seed 0), so compare ratios across the two, not FDs.

Why the FD acceptance is out of reach here (measured 2026-12-08, ninth session, the same
network): the training subsets themselves, scored as a generator's samples would be (results'
`memorisation`), give FD 2.20 / 1.92 / 2.42 for the 500-image subsets of seeds 0 / 1 / 2 and
0.48 / 0.47 / 0.57 for the 2,000-image ones (drawn exactly as the runs draw them). The vanilla
GAN's 15-21 on 500 images is 7-11 times the FD of its own training images: these generators
have not come near their data, let alone memorised it. The paper's limited-data gains
(FFHQ-200: 102.6 -> 63.3 FID) are against a StyleGAN2 trained long enough for its
discriminator's overfitting to ruin the generator; here the vanilla FD holds level while r_d
sits above 0.9 (the 12000-step curve above), so there is no such damage to prevent, and the
diffusion noise only slows the generator. A run that reaches that regime, long enough for the
generator to near its subset, is far beyond 45 minutes of 2 CPU cores.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_diffusion_gan import apply_smoke, get_default_config

VARIANTS = ("smoke",)
STEPS = 4000


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS, steps=STEPS)
    config = get_default_config()
    config.experiment = "fashion_mnist"
    config.data = dict(resolution=32, channels=1, synthetic=False, path="",
                       subset_sizes=(500, 2000))
    config.model = dict(backbone="dcgan", z_dim=64, width=16, w_dim=128, mapping_layers=2)
    steps = arg.steps
    config.train.update(batch_size=32, num_steps=steps, g_lr=2e-3, d_lr=2e-3,
                        r1_gamma=0.1, r1_interval=16, ema_kimg=5.0, log_every=100,
                        checkpoint_every=max(1, steps // 3))
    config.diffusion.update(t_min=10, t_max=1000, ada_kimg=10.0)
    config.eval = dict(num_samples=10000, classifier_steps=0, classifier_cache="",
                       curve_every=max(1, steps // 8), curve_samples=2000, snapshot_every=0)
    if arg.smoke:
        apply_smoke(config, num_steps=40, num_samples=500, batch_size=16,
                    model=dict(width=8, z_dim=16))
        config.data.subset_sizes = (100, 200)
        # 40 steps of tiny networks say nothing about overfitting: d_target -1 makes every
        # adjustment raise p (r_d > -1), so the smoke run shows T leaving T_min for certain.
        config.diffusion.update(ada_kimg=0.1, d_target=-1.0)
        config.eval.update(curve_every=20, curve_samples=200, classifier_steps=20)
    return config
