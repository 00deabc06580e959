"""Dialects bnnc defines (the `bnn` dialect)."""

from bnnc.dialects.bnn import BNN

__all__ = ["BNN"]
