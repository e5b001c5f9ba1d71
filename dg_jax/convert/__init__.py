"""dg_jax.convert."""
