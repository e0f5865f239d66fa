"""Reading model completions: the text helpers the environments share.

An environment scores the text a completion ends with, after the model's reasoning. These helpers take that text
out of TRL's completion shapes, cut the reasoning off, normalise written arithmetic, and make model text safe to
log. (This module registers no environment.)
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# zero-width and bidi marks (a lone RTL mark must not turn a right answer into "illegal characters")
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_OPERATOR_ALIASES = str.maketrans({"×": "*", "·": "*", "∗": "*", "÷": "/", "∶": "/", "−": "-", "–": "-", "—": "-"})


def completion_text(completion: Any) -> str:
    """The completion as text: a string as it is; a chat (a list of messages), its last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        last = completion[-1] if completion else {}
        return completion_text(last.get("content", "") if isinstance(last, dict) else last)
    return "" if completion is None else str(completion)


def split_think(text: str) -> tuple[Optional[str], str]:
    """(the text before the last </think>, the text after it), or (None, text) when nothing closes a think block."""
    cut = text.rfind(THINK_CLOSE)
    if cut < 0:
        return None, text
    return text[:cut], text[cut + len(THINK_CLOSE) :]


def normalize_formula(formula: str) -> str:
    """NFKC, Unicode operators to ASCII, no whitespace or invisible format marks (GeneralPoints' robust parser;
    SynLogic's game_of_24 reads its expressions the same way)."""
    formula = unicodedata.normalize("NFKC", formula).translate(_OPERATOR_ALIASES)
    return _INVISIBLE.sub("", "".join(formula.split()))


def printable(text: Optional[str], limit: int = 256) -> Optional[str]:
    """The first `limit` characters, with lone surrogates replaced: they would break JSON and UTF-8 loggers."""
    return None if text is None else text[:limit].encode("utf-8", "replace").decode("utf-8")
