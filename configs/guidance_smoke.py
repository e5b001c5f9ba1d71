"""Smoke-size overrides shared by the guidance-training paper configs: tiny networks on
synthetic 8x8 images (data.source='random'), so each config's stages run in the tests in
seconds."""
from configs.guidance_defaults import train_fields, unet_fields

TINY_UNET = unet_fields(model_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                        attention_resolutions=[4], num_heads=1, num_head_channels=32,
                        dropout=0.0)
TINY_CLASSIFIER = dict(model_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                       attention_resolutions=[4], num_head_channels=32,
                       use_scale_shift_norm=True, resblock_updown=True, pool="attention")


def apply_smoke(config) -> None:
    config.data.source = "random"
    config.data.path = ""
    config.data.resolution = 8
    config.data.channels = 3
    config.score.unet = TINY_UNET
    config.score.diffusion.diffusion_steps = 20
    config.score.train = train_fields(num_steps=2, batch_size=8, log_every=1,
                                      checkpoint_every=2,
                                      learning_rate=config.score.train.learning_rate,
                                      ema_decay=config.score.train.ema_decay)
    config.classifier.model = TINY_CLASSIFIER
    config.classifier.train = train_fields(num_steps=2, batch_size=8, log_every=1,
                                           checkpoint_every=2, learning_rate=3e-4,
                                           weight_decay=0.05)
    kw = config.score.edm.init_kwargs
    if kw:
        kw.img_resolution = 8
        kw.model_channels = 8
        kw.channel_mult = [1, 2]
        kw.num_blocks = 1
        kw.attn_resolutions = [4]
