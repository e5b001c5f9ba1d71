"""dg_jax.pipelines."""
