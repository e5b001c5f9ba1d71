"""dg_jax.parity."""
