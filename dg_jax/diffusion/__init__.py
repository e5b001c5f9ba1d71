"""dg_jax.diffusion."""
