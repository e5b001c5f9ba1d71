"""Analytic 2-D problems: Gaussian mixtures with exact diffused scores."""
