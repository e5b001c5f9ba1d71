"""dg_jax.data."""
