"""Frontends: PyTorch programs to the bnn dialect."""
