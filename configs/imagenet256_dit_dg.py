"""DiT-G++ on ImageNet 256x256 (DG paper, Table 3; DG_imagenet): Discriminator Guidance on
DiT-XL/2 with two-stage classifier-free guidance, FID 2.27 -> 1.83 (DDPM, 250 steps).

Pipeline 'dit_dg' (dg_jax/experiments/dit_dg): encode real images with the SD VAE -> DiT samples
(latents) with CFG -> DG's discriminator on latents (frozen 32x32x4 ADM classifier + conditional
head) -> DiT-G++ samples with and without DG (same latents and noise) -> VAE decode -> FID / IS /
precision-recall with the project's Inception.

Files: DiT-XL-2-256x256.pt (facebookresearch/DiT), the diffusers folder of
stabilityai/sd-vae-ft-ema (config.json + diffusion_pytorch_model.safetensors; DG_imagenet's
sample.py defaults to -mse), DG_imagenet's 32x32_classifier.pt (and discriminator_7.pt to skip
training), real data as a 256x256 .npz in DG's layout (`arr_0` uint8 NHWC + `arr_1` labels),
or ImageNet's train/ folder (data.source='folder', one subfolder per class) or TFDS
`imagenet2012` (data.source='tfds', data.path='imagenet2012', data.manual_dir) with
data.center_crop=True (guided-diffusion's center_crop_arr, as DG_imagenet's data_tool.py),
pytorch-fid's Inception weights, ADM's VIRTUAL_imagenet256_labeled.npz reference statistics.

Commands:
  python -m launch.convert --kind=dit --checkpoint=DiT-XL-2-256x256.pt \
      --flags='{"model": "DiT-XL/2", "input_size": 32}' --output=ckpt/dit_xl2_256
  python -m launch.convert --kind=sd_vae --checkpoint=sd-vae-ft-ema --output=ckpt/sd_vae_ema
  python -m launch.main --config=configs/imagenet256_dit_dg.py --workdir=/tmp/dit_dg \
      --config.data.path=imagenet256.npz --config.disc.classifier=32x32_classifier.pt \
      --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth \
      --config.eval.ref_stats=VIRTUAL_imagenet256_labeled.npz
With DG_imagenet's trained discriminator instead of training one:
  ... --config.disc.source=converted --config.disc.checkpoint=discriminator_7.pt \
      --config.disc.classifier=32x32_classifier.pt
Smoke (tiny random VAE, DiT and discriminator on random 16x16 images; about a minute on 2 CPU
cores): --config=configs/imagenet256_dit_dg.py:smoke
"""
import ml_collections

from configs.common import base_config, command_line, parse_arg

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = base_config("dit_dg", stages=("encode", "generate", "disc", "sample", "evaluate"))
    # real images: 'npz' (DG's layout), 'folder' (PNG/JPEG), 'tfds' (path = the dataset name,
    # manual_dir), 'random' (smoke); center_crop: images of any size to resolution (folder,
    # tfds); flip: data_tool.py's RandomHorizontalFlip. The encode stage holds the images in
    # memory as float32 (0.75 MB each at 256x256): bound them with subset_size (class-balanced,
    # e.g. 20000 = 15 GB); all of ImageNet (DG_imagenet's real latents) does not fit.
    config.data = dict(source="npz", path="imagenet256.npz", split="train", manual_dir="",
                       resolution=256, channels=3, num_classes=1000, subset_size=0,
                       center_crop=False, flip=True)
    # the SD VAE: a diffusers AutoencoderKL folder or its launch.convert output ('converted'),
    # or `config` (diffusers constructor arguments) with random weights ('random', smoke)
    config.vae = dict(source="converted", checkpoint="ckpt/sd_vae_ema", config={},
                      compute_dtype="float32", attention_impl="auto")
    # DiT: a released .pt / train.py checkpoint (its `entry` = EMA weights) or its launch.convert
    # folder, with `arch` the constructor arguments (a DIT_CONFIGS name under 'model')
    config.dit = dict(source="converted", checkpoint="ckpt/dit_xl2_256",
                      arch=dict(model="DiT-XL/2", input_size=32, num_classes=1000),
                      compute_dtype="float32", attention_impl="auto")
    # DiT's create_diffusion: 250 respaced DDPM steps of the linear 1000-step schedule
    config.diffusion = dict(timestep_respacing="250", noise_schedule="linear",
                            diffusion_steps=1000, learn_sigma=True)
    # forward_with_dg: scale LT_cfg while t > branch_time, ST_cfg after; on the first
    # guided_channels eps channels (3: DiT's quirk, kept for parity; 0: all four)
    config.cfg = dict(LT_cfg=1.25, ST_cfg=3.0, branch_time=200, guided_channels=3)
    config.encode = dict(batch_size=64)
    # the discriminator's fake data: DiT samples with the same CFG, without DG
    config.generate = dict(num_samples=50000, batch_size=250, shard_size=5000)
    # DG_imagenet train.py: the frozen 32x32 latent ADM classifier (in_channels 4, channel_mult
    # 1,2,3) + a conditional head on its 8x8x384 features; BCE, importance-sampled VP time,
    # Adam 3e-4, 512 real + 512 fake per step (Adam's weight_decay 1e-7 there is left out)
    config.disc = dict(
        source="train", checkpoint="", kind="adm", conditional=True, classifier="",
        compute_dtype="float32", attention_impl="auto",
        classifier_flags=dict(image_size=32, classifier_use_fp16=False, classifier_width=128,
                              classifier_depth=2, classifier_attention_resolutions="32,16,8",
                              classifier_use_scale_shift_norm=True,
                              classifier_resblock_updown=True, classifier_pool="attention",
                              out_channels=1000, in_channels=4, channel_mult="1,2,3"),
        head_flags=dict(image_size=8, classifier_use_fp16=False, classifier_width=128,
                        classifier_depth=2, classifier_attention_resolutions="32,16,8",
                        classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                        classifier_pool="attention", out_channels=1, in_channels=384),
        time_sampling="importance", t_min=1e-5, optimizer="adam", learning_rate=3e-4,
        batch_size=512, num_steps=7 * 2500, log_every=100, checkpoint_every=2500)
    # DG: dg_scale * grad log(d / (1 - d)) while the DDPM timestep t > time_min (sample.py)
    config.dg = dict(scale=1.0, time_min=100)
    config.sample = dict(num_samples=50000, batch_size=250, shard_size=5000)
    config.eval = dict(ref_stats="", features="inception", inception_weights="",
                       num_samples=50000, batch_size=250, path_samples=0, classifier_steps=0,
                       reference="data", classifier_cache="")
    if arg.smoke:
        apply_smoke(config)
    return config


def apply_smoke(config) -> None:
    """Tiny random networks on random 16x16 images (latents 8x8x4), a few steps of everything."""
    config.data.update(source="random", path="", resolution=16, num_classes=10)
    config.vae.update(source="random", checkpoint="")
    config.vae.config = dict(
        block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4, latent_channels=4,
        sample_size=16, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2)
    config.dit.update(source="random", checkpoint="")
    config.dit.arch = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2,
                           num_heads=2, num_classes=10)
    config.diffusion.timestep_respacing = "4"
    config.cfg.branch_time = 500
    config.encode.batch_size = 64
    config.generate.update(num_samples=32, batch_size=16, shard_size=16)
    config.disc.classifier_flags = dict(
        image_size=8, classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
        classifier_attention_resolutions="4", classifier_use_scale_shift_norm=True,
        classifier_resblock_updown=True, classifier_pool="attention", out_channels=10,
        in_channels=4, channel_mult="1")
    config.disc.head_flags = dict(
        image_size=8, classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
        classifier_attention_resolutions="", classifier_use_scale_shift_norm=True,
        classifier_resblock_updown=True, classifier_pool="attention", out_channels=1,
        in_channels=64)
    config.disc.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2)
    config.sample.update(num_samples=32, batch_size=16, shard_size=16)
    config.eval.update(features="pixels", num_samples=32, batch_size=16)
