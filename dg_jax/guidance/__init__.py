"""dg_jax.guidance."""
