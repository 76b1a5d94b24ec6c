"""Keras-style callbacks: the base class and the run context they receive."""

from polyrl.callbacks.base import Callback
from polyrl.callbacks.context import RunContext

__all__ = ["Callback", "RunContext"]
