"""Each axis's protocol, declared once in ``data/eval_protocols.json``.

An entry holds the protocol string every result records (``settings["protocol"]``;
its version changes whenever the protocol does, so numbers of different protocols
are never silently compared), the reference files it follows (``settings["source"]``)
and the prompt texts taken from those references (QA primer, instructions,
descriptions, reply prefixes), so Python holds no reference prompt.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PROTOCOLS_FILE = Path(__file__).resolve().parent.parent / "data" / "eval_protocols.json"


@lru_cache(maxsize=1)
def _all() -> dict[str, dict[str, Any]]:
    data = json.loads(PROTOCOLS_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def protocol(axis: str) -> dict[str, Any]:
    """The declared entry of ``axis`` (a KeyError names a missing one: a bug, not a user error)."""
    return _all()[axis]


def protocol_settings(axis: str) -> dict[str, Any]:
    """What a result's settings record: {"protocol": ..., "source": [...]}."""
    entry = protocol(axis)
    return {"protocol": entry["protocol"], "source": list(entry["source"])}


def prompt_text(axis: str, key: str) -> Any:
    """A prompt text (or mapping of texts) of ``axis``'s entry."""
    return protocol(axis)[key]
