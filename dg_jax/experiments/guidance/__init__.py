"""The guidance experiment (see pipeline.py)."""
