"""The diffusion_gan experiment (see pipeline.py)."""
