"""Fuzz targets for every parser of untrusted input (see fuzz/engine.py)."""
