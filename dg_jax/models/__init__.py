"""dg_jax.models."""
