"""bondctl: Linux bonding for Kubernetes nodes and operators."""

__version__ = "0.1.0"
