"""The dg_images experiment (see pipeline.py)."""
