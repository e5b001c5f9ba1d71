"""Classifier guidance vs classifier-free guidance on Fashion-MNIST (28x28, Debian's
dataset-fashion-mnist): one class-conditional improved-DDPM UNet trained with label dropout, a
noisy classifier, and guidance-weight sweeps scored by the Fashion-MNIST evaluation network.

Run it (2 CPU cores; see "Measured" below for the time):
  apt-get install -y dataset-fashion-mnist
  python -m launch.main --config=configs/fashion_guidance.py --workdir=/tmp/fashion_guidance
Smoke variant (tiny networks, a 200-image subset; in the tests):
  python -m launch.main --config=configs/fashion_guidance.py:smoke --workdir=/tmp/fashion_guidance_smoke

Trains, on the 60,000 training images:
  - a class-conditional improved-DDPM UNet (cosine schedule, T=1000, learned-range variance,
    hybrid loss) with label dropout p_uncond=0.2 (null label = class 10), 700 steps of 32;
  - a noisy classifier (ADM encoder on q_sample'd images at uniform t), 3000 steps of 32.
Sweeps (the same 200 latents and balanced labels at every weight, 20 steps): CG with DDPM's
mean shift (`cg`, respacing "20") and DDIM's eps shift (`cg_ddim`, "ddim20": guided-diffusion's
DDIM stride, steps 0, 50, ..., 950) on the conditional branch (ADM-G: the conditional model +
w * the noisy classifier's gradient; w = 0 is the conditional model, the same samples as CFG
w = 0), CFG with DDPM (`cfg`); each row {"weight", "accuracy", "fd", "precision", "recall"},
scored by the Fashion-MNIST evaluation CNN (dg_jax.eval.classifier.fashion_classifier, trained once and
cached; FD and k=3 precision/recall against the 10,000 test images). Then DG on top of CFG at
the sweep's lowest-FD CFG weight (stage cfg_dg: 800 CFG samples, DG's discriminator = the frozen
noisy classifier + a class-conditional head trained 400 steps on the model's own diffusion, CFG
+ DG at DG weights 0 / 1 / 2 from the sweep's latents). DIR/results.json, DIR/guidance.png (FD
vs accuracy, accuracy and FD vs weight, precision vs recall) and DIR/cfg_dg.png.
Acceptance (the issue): accuracy rises with the weight for both methods and reaches >= 0.9 at
the largest.

Measured 2026-12-07 (seventh session), seeds 0 / 1 / 2, with the 3000-step noisy classifier (mean
+- std over seeds; 200 samples a row, so FD carries a large small-sample bias: compare rows, not
other configs). The runs reused the score checkpoints of the sixth session's workdirs and
continued their 600-step classifiers to 3000 (the fit loop resumes exactly and the learning rate
is constant, so this is the default run's classifier); the three seeds side by side on 2 CPU
cores: classifier steps 600 -> 3000 in 23 min, rows 220-250 s (CG, DDIM-CG), about 155 s (CFG),
about 285 s (CFG + DG), 1 h 29 min in all. A fresh run (score stage included) was not timed.
  CFG w = 0 / 0.5 / 2 / 5: accuracy 0.590 / 0.737 / 0.890 / 0.977 (+-0.053 / 0.051 / 0.030 /
    0.010), FD 87.9 / 65.8 / 43.6 / 40.4 (+-8.0 / 6.9 / 4.0 / 3.9), precision 0.625 / 0.657 /
    0.628 / 0.543, recall 0.519 / 0.542 / 0.442 / 0.255 (the classifier is not used: the same
    values as on 2026-12-03). Accuracy rises with the weight and passes 0.9 at w=5 at every
    seed; recall falls as the papers report; precision rises at w=0.5 and falls after; FD is
    lowest at w=2 (seed 0) or w=5 (seeds 1, 2): this weak base model gains from sharpening up to
    large weights, so FD's U-shape is not reached by w=5.
  CG (conditional branch, DDPM mean shift) w = 0 / 3 / 10 / 30: accuracy 0.590 / 0.795 / 0.853
    / 0.867 (+-0.053 / 0.028 / 0.015 / 0.006), FD 87.9 / 54.8 / 41.4 / 39.4 (+-8.0 / 6.6 / 4.2 /
    3.5), precision 0.625 / 0.648 / 0.662 / 0.648, recall 0.519 / 0.538 / 0.497 / 0.379. Accuracy
    now rises at every weight but stops short of 0.9 (0.87 / 0.86 / 0.87 at w=30 by seed): the
    acceptance is not met for CG. Recall falls at w=30 as the papers report; FD still falls at
    w=30 (no U-shape). The classifier reaches 0.67-0.69 on its last noisy training batches
    (uniform t) against 0.50-0.53 after 600 steps, which lifted CG's accuracy from 0.727 to
    0.867 at w=30 (600-step classifier, 2026-12-07 sixth session: 0.590 / 0.712 / 0.753 / 0.727,
    FD 87.9 / 64.5 / 54.1 / 52.5). At equal accuracy CG has the lower FD (w=10: 0.85, FD 41 vs
    CFG w=2: 0.89, FD 44).
  Larger CG weights (measured 2026-12-07, eighth session, seeds 0 / 1 / 2, the same
    classifier; a sweep of the new rows only, run in copies of the workdirs above,
    --config.sweep.cg_weights='(100.0, 300.0)': a row's latents do not depend on the other
    weights, and the CFG w = 0 row these runs repeated equals the full sweep's at every seed):
    DDPM w = 100 / 300: accuracy 0.858 / 0.845 (+-0.024 / 0.056; 0.885 / 0.850 / 0.840 and
    0.910 / 0.815 / 0.810 by seed), FD 42.6 / 50.7, precision 0.623 / 0.528, recall 0.270 /
    0.246. So CG's accuracy peaks near w = 30 (0.87) and does not reach 0.9 at any weight on
    average; FD is lowest at w = 30 and rises after it, and precision and recall both fall:
    the samples saturate towards white blobs (DIR/guidance.png). DDIM-CG w = 100 / 300:
    accuracy 0.513 / 0.408, FD 117.5 / 154.1 (breaks down). Training the classifier further
    raises its own accuracy but not CG's: on 2,000 clean test images (t = 0) it is right 0.818
    (seed 0) / 0.803 (seed 1) after 3000 steps and 0.857 (seed 0) after 6000, yet at seed 0 CG
    with the 6000-step classifier gives accuracy 0.855 / 0.850 at w = 10 / 30 (0.870 / 0.870
    with 3000 steps): one seed, but it suggests the ceiling lies in how this small classifier's
    gradient moves the samples rather than in its accuracy. More sampling steps do not lift it
    either (seed 0, --config.sweep.respacing=50, the 3000-step classifier): accuracy 0.860 /
    0.860 / 0.890 at w = 10 / 30 / 100, FD 39.1 / 39.0 / 41.5 (20 steps: 0.870 / 0.870 / 0.885,
    FD 44.0 / 41.6 / 45.3). Nor does a wider classifier (measured 2026-12-08, ninth session,
    seed 0; --config.classifier.flags.classifier_width=64, 3000 steps from scratch, 38 min
    alone on 2 cores): its accuracy on its last noisy training batches is 0.68, as at width 32,
    and CG gives accuracy 0.860 / 0.845 at w = 10 / 30, FD 43.0 / 47.8 (width 32: 0.870 /
    0.870, FD 44.0 / 41.6). For scale: the scoring network itself is right on 0.892 of the
    real test images (results' scorer_test_accuracy, the dotted line in DIR/guidance.png), so
    0.9 asks for samples it finds easier to classify than real ones. CFG gets there as its
    recall falls to 0.255 (w = 5); CG's recall falls as far (0.246 at w = 300) without the
    accuracy.
  The base model is the larger lever (measured 2026-12-08, ninth session, seeds 0 / 1 only;
    --config.score.train.num_steps=2100, 3x the default, continued from the default run's
    700-step checkpoint at its constant learning rate, about 29 min for the extra steps alone;
    the default 3000-step classifier). CG w = 10 / 30: accuracy 0.900 / 0.895 (seed 0) and
    0.890 / 0.885 (seed 1), against 0.870 / 0.870 and 0.840 / 0.860 with 700 steps; FD 24.1 /
    28.2 and 26.2 / 29.9 (was 44.0 / 41.6 and 43.6 / 41.2), recall 0.640 / 0.492 and 0.588 /
    0.444. CFG w = 0 / 5: accuracy 0.670 / 0.995 and 0.690 / 0.980 (was 0.585 / 0.980 and 0.540
    / 0.965), FD 49.5 / 30.4 and 55.8 / 24.3 (was 81.2 / 44.9 and 96.7 / 38.4). So CG comes
    within 0.01-0.015 of 0.9 and FD has its U-shape at w = 10, but its accuracy still falls
    slightly from w = 10 to w = 30. These runs are two seeds and not the default: the score
    stage alone would then take about 40 minutes of the job's 45.
  CG (conditional branch, DDIM eps shift, "ddim20") w = 0 / 3 / 10 / 30: accuracy 0.478 / 0.678
    / 0.752 / 0.673 (+-0.071 / 0.078 / 0.057 / 0.098), FD 135.3 / 85.3 / 51.8 / 61.5, precision
    0.547 / 0.558 / 0.475 / 0.287, recall 0.363 / 0.616 / 0.662 / 0.642. Unguided 20-step DDIM is
    much worse than 20-step DDPM on this model (FD 135 vs 88); guidance helps up to w=10 and
    precision collapses at w=30.
  DDIM-CG on 2026-12-03 used respacing "20" (unconditional branch), whose first step is t=999:
    there the cosine schedule's abar is 2.4e-9 and guided-diffusion's `condition_score` maps the
    eps shift to x_0 through 1 / sqrt(abar), so the gradient was amplified ~2e4 times and every
    w > 0 broke down (precision 0.13-0.15, FD 179-180). "ddim20" (the stride guided-diffusion's
    DDIM scripts use) starts at t=950, abar = 0.006, a factor of ~13.
  CG on the unconditional branch (sweep.cg_base='unconditional'; measured 2026-12-03, DDPM, w =
    0 / 1 / 3 / 10, 600-step classifier): accuracy 0.107 / 0.192 / 0.330 / 0.483, FD 134.0 /
    132.1 / 107.3 / 80.8.
  DG on top of CFG (cfg_dg) at the sweep's lowest-FD CFG weight (w* = 2 at seed 0, 5 at seeds
    1 and 2); DG weight 0 / 1 / 2: FD 40.33 / 26.02 / 20.42 (+-3.79 / 1.57 / 1.47), i.e. DG cuts
    FD by 35.4 +- 2.1% at weight 1 and 49.1 +- 5.3% at weight 2 (53.2 / 51.1 / 43.1% at seeds
    0 / 1 / 2); accuracy 0.952 / 0.957 / 0.955, precision 0.567 / 0.632 / 0.628, recall 0.331 /
    0.411 / 0.460: DG buys back the recall that a large CFG weight costs, without losing
    accuracy. Weight 0 is the sweep's CFG row again at every seed (FD 44.6943 / 38.3892 /
    37.9061). Discriminator accuracy on training images at t = 0 / 100 / 250 / 500 / 749: seed 0
    0.889 / 0.885 / 0.898 / 0.855 / 0.777, seed 1 0.932 / 0.908 / 0.924 / 0.906 / 0.820, seed 2
    0.906 / 0.918 / 0.900 / 0.896 / 0.838 (its frozen feature extractor is the noisy classifier;
    with the 600-step one the cut was 41.5 +- 5.0% at weight 2). This base model is weak (FD 40
    at its best CFG weight, 200 samples), so DG has much to fix; the cut on a strong model will
    be smaller.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_guidance import get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.stages = ("score", "classifier", "sweep", "cfg_dg")
    config.data.update(source="fashion_mnist", resolution=28, channels=1, num_classes=10,
                       holdout=0, subset_size=0)
    config.score.p_uncond = 0.2
    config.score.flags.update(num_channels=32, num_res_blocks=1, channel_mult="1,2,2",
                              attention_resolutions="", num_heads=1, class_cond=True)
    config.score.train.update(num_steps=700, batch_size=32, learning_rate=1e-3,
                              ema_decay=0.995, log_every=50, checkpoint_every=350)
    config.classifier.flags.update(classifier_width=32, classifier_depth=1,
                                   classifier_channel_mult="1,2,2",
                                   classifier_attention_resolutions="",
                                   classifier_resblock_updown=False, classifier_pool="adaptive")
    config.classifier.train.update(num_steps=3000, batch_size=32, learning_rate=1e-3,
                                   log_every=100, checkpoint_every=300)
    config.sweep.update(respacing="20", ddim_respacing="ddim20", num_samples=200, batch_size=200,
                        cg_weights=[0.0, 3.0, 10.0, 30.0], cg_base="conditional",
                        cfg_weights=[0.0, 0.5, 2.0, 5.0],
                        cg_samplers=["ddpm", "ddim"], scorer="fashion_mnist", scorer_seed=0,
                        scorer_steps=1200)  # the evaluation network of configs/fashion_dg.py
    config.cfg_dg.update(num_fake=800, num_steps=400, batch_size=32, weights=[0.0, 1.0, 2.0])
    if arg.smoke:
        config.data.subset_size = 200
        for train in (config.score.train, config.classifier.train):
            train.update(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2)
        config.score.flags.update(channel_mult="1,2", diffusion_steps=20)
        config.classifier.flags.update(classifier_channel_mult="1,2")
        config.sweep.update(respacing="4", ddim_respacing="ddim4", num_samples=32, batch_size=16,
                            cg_weights=[0.0, 2.0],
                            cfg_weights=[0.0, 2.0], scorer_steps=20)
        config.cfg_dg.update(num_fake=24, num_steps=4, batch_size=8, log_every=2,
                             checkpoint_every=2, weights=[0.0, 2.0])
    return config
