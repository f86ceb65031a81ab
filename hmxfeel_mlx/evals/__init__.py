"""Evaluation: what `hmx-mlx eval` runs on a model and how `compare` reads the results.

- ``datasets/``: the benchmarks' data: where it is found (``sources``), downloaded (``hub``), read
  (``tables``) and turned into items (``loaders``, ``truthfulqa``); the `hmx-mlx data` commands.
- ``axes/``: the evaluation axes and how they query the model: option log-likelihoods (``scoring``,
  ``choice``), batched generation (``generation``), drift from the base (``drift``), the shared
  parts (``core``).
- ``runner`` (`hmx-mlx eval`: axes -> one JSON file), ``protocols`` (each axis's reference protocol),
  ``metrics`` (pure scoring functions), ``audit`` (an independent recomputation of MC records).
- ``compare`` (`hmx-mlx compare`), ``item_pairs`` (per-item values aligned between two evaluations),
  ``stats`` (the tests and intervals); ``commands``: the click commands `eval` and `compare`.
"""

from .datasets.items import AXIS_FILES, GenItem, MCItem

__all__ = ["AXIS_FILES", "GenItem", "MCItem"]
