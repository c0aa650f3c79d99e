"""The version of yprov4ml (its own module, so that writers need not import the package)."""

__version__ = "0.1.0"
