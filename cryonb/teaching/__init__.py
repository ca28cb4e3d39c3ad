"""Plotting and measuring functions shared by the teaching notebooks in ``notebooks/teaching``."""

from .plots import radial_profile, ring_correlation, show_images

__all__ = ["radial_profile", "ring_correlation", "show_images"]
