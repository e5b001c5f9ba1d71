"""dg_jax.train."""
