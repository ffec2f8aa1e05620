"""The package version, in a module of its own so that low modules never import the package face."""

__all__ = ["__version__"]

__version__ = "0.1.0"
