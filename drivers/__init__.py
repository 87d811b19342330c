"""Drivers, one per rig role; identical for real and virtual instruments."""
