"""Notebook views over cryonb.core objects (ipywidgets, HoloViews, nglview)."""
