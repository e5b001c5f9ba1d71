"""Experiments: one package per family, each wiring the library's layers into resumable stages.

  toy2d/          DG's 2-D experiment (configs/toy2d.py)
  dg_images/      DG on images: score model -> fake set -> discriminator -> EDM-G++ / DDPM-G++
                  -> evaluation (configs/digits_dg.py, cifar10_edm_dg.py, ...)
  guidance/       score models and guides trained and swept: improved DDPM, EDM, CG, CFG
                  (configs/digits_guidance.py, cifar10_iddpm.py, ...)
  diffusion_gan/  vanilla GAN vs Diffusion-GAN (configs/toy25_diffusion_gan.py, ...)
  kit/            what they share: run setup, `fit`, sample shards
  registry.py     config.pipeline -> the experiment's `run`

Experiments import the library and the kit, never each other.
"""
