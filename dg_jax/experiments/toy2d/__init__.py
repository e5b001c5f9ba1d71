"""The toy2d experiment (see pipeline.py)."""
