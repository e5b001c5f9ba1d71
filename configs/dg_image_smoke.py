"""Smoke-size overrides shared by the paper configs: tiny random networks on synthetic 8x8
images, so the full stage sequence of each config runs in the test suite in seconds."""


def apply_smoke(config, family: str = "edm") -> None:
    config.data = dict(source="random", path="", resolution=8, channels=3,
                       num_classes=config.data.num_classes)
    config.score.source = "random"
    if family == "edm":
        kw = config.score.arch.init_kwargs
        kw.img_resolution = 8
        kw.model_channels = 8
        kw.channel_mult = [1, 2]
        kw.num_blocks = 1
        kw.attn_resolutions = [4]
        kw.dropout = 0.0
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
    config.disc.num_steps = 4
    config.disc.batch_size = 8
    config.disc.log_every = 2
    config.disc.checkpoint_every = 2
    config.eval = dict(ref_stats="", features="pixels", inception_weights="", num_samples=32,
                       batch_size=16, path_samples=8, classifier_steps=0)
