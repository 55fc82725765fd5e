"""micrograde: grade cryo-EM micrographs good / medium / bad."""

__all__ = ["__version__"]

__version__ = "0.2.0"
