"""ieum-chat: the real-time chat backend of the Ieum couples app."""

__all__ = ["__version__"]

__version__ = "0.1.0"
