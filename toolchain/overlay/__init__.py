"""Overlays: templates rendered per node, manifests, the shared/own split, and the shipped overlays."""
