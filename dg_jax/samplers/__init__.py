"""dg_jax.samplers."""
