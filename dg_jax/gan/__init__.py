"""dg_jax.gan: Diffusion-GAN (adaptive diffusion instance noise) and its GAN trainer."""
