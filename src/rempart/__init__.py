"""Rempart: a data-sovereignty agreement as software that enforces it and lets outsiders check it."""

__version__ = "0.1.0"

__all__ = ["__version__"]
