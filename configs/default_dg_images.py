"""Defaults of the image DG configs (pipeline 'dg_images'; not a config itself: see digits_dg.py,
cifar10_edm_dg.py, ffhq64_edm_dg.py, imagenet256_adm_dg.py), and their smoke size.

`get_default_config()` is DG's CIFAR-10 setup (EDM-G++): EDM's VP network converted from its
release, DG's 32x32 ADM classifier as a frozen feature extractor with a trained head; each config
changes only what differs. `apply_smoke(config)` makes any of them tiny and random.
"""
import ml_collections

from configs.common import base_config


def get_default_config() -> ml_collections.ConfigDict:
    config = base_config("dg_images", stages=("score", "generate", "disc", "sample", "evaluate"))
    config.data = dict(source="npz", path="", resolution=32, channels=3, num_classes=0)
    # compute_dtype 'bfloat16': bfloat16 convolutions/matmuls, float32 parameters and state
    # (score.compute_dtype for EDM networks, disc.compute_dtype for the ADM discriminator).
    # attention_impl 'auto': cuDNN's fused attention on GPUs in 16 bits, else XLA einsums;
    # 'xla' always the einsums (score.attention_impl; disc.attention_impl for disc.kind='adm').
    # family 'edm' (EDM networks, EDM-G++) or 'adm' (guided-diffusion UNets, DDPM-G++/DDIM-G++);
    # source 'train' (EDM loss on data), 'converted' (launch.convert output) or 'random' (smoke).
    config.score = dict(
        family="edm", source="converted", checkpoint="", compute_dtype="float32",
        attention_impl="auto",
        # EDM's CIFAR-10 VP network (used only with score.source='random'/'train')
        arch=dict(class_name="VPPrecond", init_kwargs=dict(
            img_resolution=32, img_channels=3, label_dim=0, model_type="SongUNet",
            embedding_type="positional", encoder_type="standard", decoder_type="standard",
            channel_mult_noise=1, resample_filter=[1, 1], model_channels=128,
            channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16], dropout=0.13,
            augment_dim=9)),
        # guided-diffusion's model-and-diffusion flags (family 'adm' with score.source='random';
        # a converted checkpoint carries its own)
        flags={})
    # EDM's deterministic Heun sampler: 18 steps = 35 network evaluations.
    config.sampler = dict(num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0, S_churn=0.0,
                          S_min=0.0, S_max=float("inf"), S_noise=1.0, respacing="")
    config.generate = dict(num_samples=50000, batch_size=500, shard_size=5000)
    # DG's train.py: frozen ADM classifier + head, Adam 3e-4, batch 128, importance sampling
    config.disc = dict(
        source="train", checkpoint="", kind="adm", compute_dtype="float32", attention_impl="auto",
        channels=[], time_embed_dim=0,  # only for disc.kind="conv"
        conditional=False, classifier="",
        # DG's 32x32 ADM classifier (a converted file carries the same flags; these build it
        # with random weights when disc.classifier="") and DG's head on its 8x8 features
        classifier_flags=dict(image_size=32, classifier_use_fp16=False, classifier_width=128,
                              classifier_depth=4, classifier_attention_resolutions="32,16,8",
                              classifier_use_scale_shift_norm=True,
                              classifier_resblock_updown=True, classifier_pool="attention",
                              out_channels=1000),
        head_flags=dict(image_size=8, classifier_use_fp16=False, classifier_width=128,
                        classifier_depth=2, classifier_attention_resolutions="32,16,8",
                        classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                        classifier_pool="attention", out_channels=1, in_channels=512),
        # precompute_draws=K: frozen features of K (tau, noise) draws per image, computed once;
        # the head then trains on them (0: fresh draws each step; only for disc.kind="adm")
        precompute_draws=0,
        # classifier_train.num_steps > 0 (disc.kind='adm', no disc.classifier file): the
        # classifier stage first trains classifier_flags' network as a noisy classifier on the
        # labelled real images (DG's VP time), then the head trains on its frozen features
        classifier_train=dict(num_steps=0, batch_size=128, optimizer="adam",
                              learning_rate=1e-3, time_sampling="uniform", t_min=1e-5,
                              log_every=100, checkpoint_every=1000),
        time_sampling="importance", t_min=1e-5, optimizer="adam", learning_rate=3e-4,
        batch_size=128, num_steps=60 * 782, log_every=500, checkpoint_every=5000)
    config.sample = dict(num_samples=50000, batch_size=500, shard_size=5000)
    # DG (EDM-G++ defaults of DG's generate.py): weight 2 on the first-order slope, tau window.
    config.dg = dict(weight_1st=2.0, weight_2nd=0.0, time_min=0.01, time_max=1.0, boosting=False,
                     clip_probability=True)
    # classifier guidance beside DG: a converted ADM classifier and its scale (0: off)
    config.cg = dict(scale=0.0, classifier="")
    # the DG-weight sweep: FD of sweep.num_samples samples (the same latents) at each weight
    config.sweep = dict(weights=[], num_samples=0)
    # reference 'data' (the training images) or 'test' (the source's test split); features
    # 'fashion_mnist' caches its network in classifier_cache ("" = WORKDIR/eval_classifier)
    config.eval = dict(ref_stats="", features="inception", inception_weights="", num_samples=50000,
                       batch_size=500, path_samples=500, classifier_steps=0, reference="data",
                       classifier_cache="")
    return config


def apply_smoke(config, family: str = "edm") -> None:
    """Smoke size: tiny random networks on synthetic 8x8 images, so the full stage sequence of
    each config runs in the test suite in seconds."""
    config.data = dict(source="random", path="", resolution=8, channels=3,
                       num_classes=config.data.num_classes)
    config.score.source = "random"
    if family == "edm":
        kw = config.score.arch.init_kwargs
        kw.update(img_resolution=8, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                  attn_resolutions=[4], dropout=0.0)
        if "augment_dim" in kw:
            kw.augment_dim = 0
    else:
        config.score.flags = dict(image_size=8, num_channels=32, num_res_blocks=1,
                                  channel_mult="1,2", attention_resolutions="4",
                                  num_head_channels=32, learn_sigma=True,
                                  class_cond=config.data.num_classes > 0,
                                  resblock_updown=True, use_scale_shift_norm=True,
                                  diffusion_steps=1000, noise_schedule="linear")
        config.sampler.respacing = "ddim4"
    config.sampler.num_steps = 3
    config.generate = dict(num_samples=32, batch_size=16, shard_size=16)
    config.sample = dict(num_samples=32, batch_size=16, shard_size=16)
    config.disc.classifier = ""
    config.disc.classifier_flags = dict(image_size=8, classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
                                        classifier_attention_resolutions="4", out_channels=10,
                                        classifier_use_scale_shift_norm=True,
                                        classifier_resblock_updown=True, classifier_pool="attention")
    config.disc.head_flags = dict(image_size=8, classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
                                  classifier_attention_resolutions="", out_channels=1,
                                  in_channels=64, classifier_pool="attention",
                                  classifier_use_scale_shift_norm=True,
                                  classifier_resblock_updown=True)
    config.disc.update(num_steps=4, batch_size=8, log_every=2, checkpoint_every=2)
    config.eval.update(ref_stats="", features="pixels", inception_weights="", num_samples=32,
                       batch_size=16, path_samples=8, classifier_steps=0)
