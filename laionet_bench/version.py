"""The package version, in a module of its own so that low modules never import the package face."""

__version__ = "0.1.0"
