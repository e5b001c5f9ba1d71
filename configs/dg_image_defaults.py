"""Fields shared by the image DG configs (not a config itself: see digits_dg.py,
cifar10_edm_dg.py, ffhq64_edm_dg.py, imagenet256_adm_dg.py)."""
import ml_collections


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.pipeline = "dg_images"
    config.seed = 0
    config.tensorboard = False
    config.stages = ("score", "generate", "disc", "sample", "evaluate")
    # compute_dtype 'bfloat16': bfloat16 convolutions/matmuls, float32 parameters and state
    # (score.compute_dtype for EDM networks, disc.compute_dtype for the ADM discriminator).
    # attention_impl 'auto': cuDNN's fused attention on GPUs in 16 bits, else XLA einsums;
    # 'xla' always the einsums (score.attention_impl; disc.attention_impl for disc.kind='adm').
    # family 'edm' (EDM networks, EDM-G++) or 'adm' (guided-diffusion UNets, DDPM-G++/DDIM-G++);
    # source 'train' (EDM loss on data), 'converted' (launch.convert output) or 'random' (smoke).
    config.score = ml_collections.ConfigDict(dict(family="edm", source="train", checkpoint="",
                                                  compute_dtype="float32",
                                                  attention_impl="auto"))
    # EDM's deterministic Heun sampler: 18 steps = 35 network evaluations.
    config.sampler = dict(num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0, S_churn=0.0,
                          S_min=0.0, S_max=float("inf"), S_noise=1.0, respacing="")
    # DG (EDM-G++ defaults of DG's generate.py): weight 2 on the first-order slope, tau window.
    config.dg = dict(weight_1st=2.0, weight_2nd=0.0, time_min=0.01, time_max=1.0, boosting=False,
                     clip_probability=True)
    # classifier guidance beside DG: a converted ADM classifier and its scale (0: off)
    config.cg = dict(scale=0.0, classifier="")
    return config
