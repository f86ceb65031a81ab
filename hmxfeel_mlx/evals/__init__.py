"""Evaluation suite: benchmark loaders (``datasets``), scoring functions
(``metrics``) and comparison statistics (``stats``) for base vs human-like vs
machine-like fine-tuned models. All three modules are pure (numpy + stdlib)."""

from .datasets import AXIS_FILES, GenItem, MCItem

__all__ = ["AXIS_FILES", "GenItem", "MCItem"]
