"""dg_jax: Discriminator Guidance for score-based diffusion models in JAX/Flax."""

__version__ = "0.1.0"
