"""Classifier guidance vs classifier-free guidance, and improved DDPM's hybrid loss, measured on
the 1,797 scikit-learn digits (8x8, no download).

Run everything (under 30 minutes on 2 CPU cores):
  python -m launch.main --config=configs/digits_guidance.py --workdir=/tmp/digits_guidance
Smoke variant (179 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
  python -m launch.main --config=configs/digits_guidance.py:smoke --workdir=/tmp/digits_guidance_smoke
Stages resume from the workdir and can be run alone, e.g. --config.stages='("vlb",)'.

Trains (on the first 1,501 digits; the last 296 are held out for the VLB):
  - a class-conditional improved-DDPM UNet (cosine schedule, T=1000, learned-range variance,
    hybrid loss) with label dropout p_uncond=0.2 (null label = class 10);
  - a noisy classifier (ADM encoder on q_sample'd digits at uniform t);
  - two small unconditional models for the same steps: hybrid loss + importance sampling of t,
    and L_simple with fixed variance (T=200 so the full VLB loop stays cheap);
  - the scoring classifier (dg_jax.eval.digits_classifier, seed 1), used for nothing else.
Writes DIR/results.json: `cg`, `cfg` = [{"weight", "accuracy", "fd"}, ...] in increasing weight
(CG on the unconditional branch, so w=0 is unconditional; CFG w=0 is the conditional model),
`vlb_bits_per_dim` = {"hybrid_is", "simple"}; and DIR/guidance.png (the trade-off curve).
Acceptance: accuracy rises with w for CG and CFG and reaches >= 0.9 at the largest w;
hybrid_is < simple.

Measured with the default config on 2026-12-02 (named rng streams), seed 0 only (16.4 min
wall on 2 CPU cores shared with other jobs; other seeds not run):
  cg  w = 0, 1, 2, 4, 8:     accuracy 0.1025, 0.590, 0.8325, 0.9225, 0.945
                             fd       4.819, 8.130, 4.854, 2.983, 2.575
  cfg w = 0, 0.5, 1, 2, 4:   accuracy 0.970, 0.990, 0.995, 0.995, 0.995
                             fd       1.507, 1.210, 1.618, 2.759, 5.344
  vlb_bits_per_dim: hybrid_is 4.343, simple 4.658 (800 steps each, 296 held-out digits, T=200)
(scoring classifier train accuracy 0.9866). The acceptance holds. CFG's FD is lowest at a small
weight (0.5) and rises after it, the trade-off the CFG paper reports; CG's FD falls with the
weight here because w=0 is the unconditional model.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_guidance import get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.stages = ("score", "classifier", "vlb", "sweep")
    config.data.update(source="digits", resolution=8, channels=1, holdout=296)
    small = dict(num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="",
                 num_heads=1)
    config.score.p_uncond = 0.2
    config.score.flags.update(small, class_cond=True)
    config.score.train.update(num_steps=1500, batch_size=64, learning_rate=1e-3,
                              ema_decay=0.995, log_every=100, checkpoint_every=500)
    config.classifier.flags.update(classifier_width=32, classifier_depth=1,
                                   classifier_channel_mult="1,2",
                                   classifier_attention_resolutions="",
                                   classifier_resblock_updown=False, classifier_pool="adaptive")
    config.classifier.train.update(num_steps=1000, batch_size=64, learning_rate=1e-3,
                                   log_every=100, checkpoint_every=500)
    config.vlb.flags.update(small, diffusion_steps=200)
    config.vlb.train.update(num_steps=800, batch_size=64, learning_rate=1e-3, ema_decay=0.995,
                            log_every=100, checkpoint_every=400)
    config.vlb.eval_batch_size = 296
    config.sweep.update(respacing="50", num_samples=400, batch_size=200,
                        cg_weights=[0.0, 1.0, 2.0, 4.0, 8.0],
                        cfg_weights=[0.0, 0.5, 1.0, 2.0, 4.0])
    if arg.smoke:
        for train in (config.score.train, config.classifier.train, config.vlb.train):
            train.update(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2)
        config.score.flags.update(channel_mult="1", diffusion_steps=20)
        config.vlb.flags.update(channel_mult="1", diffusion_steps=8)
        config.sweep.update(respacing="4", num_samples=32, batch_size=16, cg_weights=[0.0, 2.0],
                            cfg_weights=[0.0, 2.0], scorer_steps=20)
    return config
