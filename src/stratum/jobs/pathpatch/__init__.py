"""Holds the sitecustomize module job processes load for the /opt/ml path remapping fallback."""
