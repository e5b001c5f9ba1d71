"""dg_jax.eval."""
