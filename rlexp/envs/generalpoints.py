"""GeneralPoints: the card-arithmetic game of Chu et al., "SFT Memorizes, RL Generalizes" (arXiv 2501.17161).

Some cards are dealt (4 in the paper); the model answers with one formula that uses every card's value exactly
once, with integers, `+ - * /` and parentheses, and evaluates to the target (24 in the paper). A=1, 2..10 at face
value; J/Q/K count 10 under the training rule `face10` and 11/12/13 under the rule-OOD `face_ood`.

The rules, sampler, prompts, original parser, verifier and rewards are the paper's, as its authors' code,
LeslieTrue/SFTvsRL, implements them ("SFTvsRL" below, with the file); the robust parser, the exact evaluator,
the held-out split and the fixes of robust mode are rlexp's own. That repository has no licence, so
none of its code is used: everything here is written from its described behaviour.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import math
import operator
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from rlexp.envs import register
from rlexp.envs.base import Env, Score, as_dataset
from rlexp.envs.text import completion_text, normalize_formula, printable, split_think

if TYPE_CHECKING:
    import datasets

# ---------------------------------------------------------------------------------------------------------------
# Game constants (rewards: the paper's appendix A.3, SFTvsRL's utils_rl.py REWARD_FN)

REWARDS = {
    "CORRECT_SOLUTION": 5.0,
    "PARTIAL_SOLUTION": 1.0,
    "NO_SOLUTION": -1.0,
    "INCORRECT_VISION": -1.5,  # GP-VL only: the answer's `cards` are not the dealt ones
    "INCORRECT_NUMBER": -2.0,
    "ILLEGAL_FORMULA": -3.0,
}
FACE_RULES = ("face10", "face_ood")
SPLIT_MODES = ("iid", "heldout_multisets")
REWARD_MODES = ("paper", "binary")
MAX_CARDS = 6

# exact strings, trailing period included: the prompt renders it as "'10'., and" (SFTvsRL's prompt_lib/prompts.py)
FACE_CARD_MSG = {
    "face10": "'J', 'Q', and 'K' count as '10'.",
    "face_ood": "'J', 'Q', and 'K' count as '11', '12', and '13' respectively.",
}
# the sampler's suit sets, in the original's order (the RNG draws index into them): GP-L deals mixed suits, GP-VL
# black ones, and its visual-OOD split red ones
MIXED_SUITS = ("H", "S", "D", "C")
BLACK_SUITS = ("S", "C")
RED_SUITS = ("H", "D")
_RANK_NAMES = {1: "A", 11: "J", 12: "Q", 13: "K"}

HELDOUT_SALT = "gp-v1"
HELDOUT_FRAC = 0.2

# ---------------------------------------------------------------------------------------------------------------
# Formula grammar and evaluator (rlexp's own: the original eval()s the formula). Model text is only ever tokenised
# and walked by this parser.

_OPS = "+-*/"
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM = 3
_MAX_FORMULA_CHARS = 200
_MAX_TOKENS = 32
# Python's own parser refuses deeper nesting, so compat mode treats it as "eval raised"
_MAX_DEPTH = 200

_TOKEN_ROBUST = re.compile(r"[0-9]+|[-+*/()]")
_TOKEN_ORIGINAL = re.compile(r"\d+|[-+*/()]")  # \d is Unicode-aware, like the original tokeniser
_VALID_NUMBER = re.compile(r"[1-9][0-9]*")


class _FormulaError(Exception):
    """The token list is not a well-formed expression (plays the role of `eval` raising)."""


def _parse(tokens: list[str], leaf: Callable[[str], Any], combine: Callable[[str, Any, Any], Any]) -> Any:
    """Recursive descent: expr := term (('+'|'-') term)*, term := factor (('*'|'/') factor)*,
    factor := INT | '(' expr ')'. No unary operators. `leaf` and `combine` decide what is computed."""
    pos = 0
    n = len(tokens)

    def expr(depth: int) -> Any:
        nonlocal pos
        value = term(depth)
        while pos < n and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            value = combine(op, value, term(depth))
        return value

    def term(depth: int) -> Any:
        nonlocal pos
        value = factor(depth)
        while pos < n and tokens[pos] in "*/":
            op = tokens[pos]
            pos += 1
            value = combine(op, value, factor(depth))
        return value

    def factor(depth: int) -> Any:
        nonlocal pos
        if pos >= n:
            raise _FormulaError("unexpected end")
        tok = tokens[pos]
        if tok == "(":
            if depth >= _MAX_DEPTH:
                raise _FormulaError("too deeply nested")
            pos += 1
            value = expr(depth + 1)
            if pos >= n or tokens[pos] != ")":
                raise _FormulaError("missing ')'")
            pos += 1
            return value
        if tok in _OPS or tok == ")":
            raise _FormulaError(f"unexpected {tok!r}")
        pos += 1
        return leaf(tok)

    value = expr(0)
    if pos != n:
        raise _FormulaError(f"unexpected {tokens[pos]!r}")
    return value


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _apply(op: str, a: Any, b: Any) -> Any:
    return _ARITH[op](a, b)


def _exact_value(tokens: list[str]) -> Fraction:
    return _parse(tokens, lambda tok: Fraction(int(tok)), _apply)


def _python_leaf(tok: str) -> int:
    # what Python's eval would refuse: non-ASCII digits and leading zeros ("04"; "00" is legal Python)
    if not tok.isascii() or (tok[0] == "0" and tok.strip("0")):
        raise _FormulaError(f"invalid literal {tok!r}")
    return int(tok)


def _python_value(tokens: list[str]) -> int | float:
    """What the original's `eval` returns: int arithmetic, true division to float."""
    return _parse(tokens, _python_leaf, _apply)


# ---------------------------------------------------------------------------------------------------------------
# Solver
#
# Four cards: the paper's enumeration (distinct permutations x operator triples x 7 bracket patterns), because the
# verifier's prefix feedback depends on its exact string set. Other card counts: every expression tree, rendered
# with the fewest parentheses. Solvability uses a value-set search over trees; for values 1..13 it agrees with
# the 4-card pattern enumeration on every multiset and every positive integer target (checked exhaustively while
# writing this module), so the sampler's rejections match the paper's.

_PATTERNS = (
    "{0}{o0}{1}{o1}{2}{o2}{3}",
    "({0}{o0}{1}){o1}{2}{o2}{3}",
    "({0}{o0}{1}{o1}{2}){o2}{3}",
    "{0}{o0}({1}{o1}{2}){o2}{3}",
    "{0}{o0}({1}{o1}{2}{o2}{3})",
    "{0}{o0}{1}{o1}({2}{o2}{3})",
    "({0}{o0}{1}){o1}({2}{o2}{3})",
)


@functools.lru_cache(maxsize=1)
def _pattern_templates() -> tuple[tuple[str, Any], ...]:
    """(format string over card slots 0..3, expression tree over slot indices) for the 7 x 64 paper templates."""
    out = []
    for pattern, ops in itertools.product(_PATTERNS, itertools.product(_OPS, repeat=3)):
        fmt = pattern.replace("{o0}", ops[0]).replace("{o1}", ops[1]).replace("{o2}", ops[2])
        tree = _parse(_TOKEN_ROBUST.findall(fmt.format(0, 1, 2, 3)), int, lambda op, a, b: (op, a, b))
        out.append((fmt, tree))
    return tuple(out)


def _float_div(a: float, b: float) -> float:
    return a / b if b else math.nan


_FLOAT_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _float_div}


def _eval_tree(tree: Any, slots: list, ops: dict) -> Any:
    if isinstance(tree, int):
        return slots[tree]
    op, left, right = tree
    return ops[op](_eval_tree(left, slots, ops), _eval_tree(right, slots, ops))


def _pattern_solutions(values: tuple[int, ...], target: int) -> set[str]:
    found = set()
    for perm in set(itertools.permutations(values)):
        floats = [float(v) for v in perm]
        exact = [Fraction(v) for v in perm]
        for fmt, tree in _pattern_templates():
            # a float screen keeps Fraction arithmetic for the few near-hits, which are then confirmed exactly
            if abs(_eval_tree(tree, floats, _FLOAT_OPS) - target) > 1e-6:
                continue
            try:
                if _eval_tree(tree, exact, _ARITH) == target:
                    found.add(fmt.format(*perm))
            except ZeroDivisionError:
                pass
    return found


def _splits(ms: tuple[int, ...]):
    """Unordered splits {small, big} of a sorted multiset into two non-empty parts, small side first."""
    n = len(ms)
    seen = set()
    for size in range(1, n // 2 + 1):
        for idx in itertools.combinations(range(n), size):
            small = tuple(ms[i] for i in idx)
            big = tuple(ms[i] for i in range(n) if i not in idx)
            key = (small, big) if len(small) < len(big) else tuple(sorted((small, big)))
            if key not in seen:
                seen.add(key)
                yield small, big


@functools.lru_cache(maxsize=1 << 16)
def _reachable(ms: tuple[int, ...]) -> frozenset[Fraction]:
    """Every value an expression tree over `ms` can take (only called on small multisets)."""
    if len(ms) == 1:
        return frozenset({Fraction(ms[0])})
    out = set()
    for small, big in _splits(ms):
        for a in _reachable(small):
            for b in _reachable(big):
                out.update((a + b, a - b, b - a, a * b))
                if b:
                    out.add(a / b)
                if a:
                    out.add(b / a)
    return frozenset(out)


# A zero on the small side absorbs the big side: `0 * b` and `0 / b` (b != 0) leave b free. Any non-empty multiset
# reaches some value, and one holding a nonzero card reaches a nonzero value (x * rest, or x + rest if rest is 0).
_ANY = "any"
_ANY_NONZERO = "any nonzero"


def _partners(op: str, small_left: bool, a: Fraction, v: Fraction) -> tuple:
    """Values b of the big side such that `a op b == v` (small side left) or `b op a == v` (small side right)."""
    if op == "+":
        return (v - a,)
    if op == "-":
        return (a - v,) if small_left else (v + a,)
    if op == "*":
        if a == 0:
            return (_ANY,) if v == 0 else ()
        return (v / a,)
    if small_left:  # a / b == v
        if v == 0:
            return (_ANY_NONZERO,) if a == 0 else ()
        return (a / v,) if a else ()
    return (v * a,) if a else ()  # b / a == v


@functools.lru_cache(maxsize=1 << 18)
def _reaches(ms: tuple[int, ...], v: Fraction) -> bool:
    if len(ms) <= 3:
        return v in _reachable(ms)
    # iterate the small side's few values and ask the big side for the one value it must reach, so the big
    # side's (large) value set is never built
    for small, big in _splits(ms):
        for a in _reachable(small):
            for op in _OPS:
                for small_left in (True, False):
                    for b in _partners(op, small_left, a, v):
                        if b == _ANY or (b == _ANY_NONZERO and any(big)) or _reaches(big, b):
                            return True
    return False


def _wrap(text: str, prec: int, op: str, right: bool) -> str:
    p = _PREC[op]
    if prec < p or (right and prec == p and op in "-/"):
        return f"({text})"
    return text


def _tree_solutions(values: tuple[int, ...], target: int) -> set[str]:
    memo: dict = {}

    def exprs(ms: tuple[int, ...], v: Any) -> set[tuple[str, int]]:
        """(string, precedence of its top operator) for every expression over `ms` with value v (or any value)."""
        key = (ms, v)
        if key in memo:
            return memo[key]
        if v in (_ANY, _ANY_NONZERO):
            out = set()
            for w in _reachable(ms):
                if w or v == _ANY:
                    out |= exprs(ms, w)
            memo[key] = out
            return out
        if len(ms) == 1:
            out = {(str(ms[0]), _ATOM)} if ms[0] == v else set()
            memo[key] = out
            return out
        out = set()
        for small, big in _splits(ms):
            for a in _reachable(small):
                for op in _OPS:
                    for small_left in (True, False):
                        for b in _partners(op, small_left, a, v):
                            if b not in (_ANY, _ANY_NONZERO) and not _reaches(big, b):
                                continue
                            left, right = ((small, a), (big, b)) if small_left else ((big, b), (small, a))
                            rights = exprs(*right)
                            for ls, lp in exprs(*left):
                                ls = _wrap(ls, lp, op, right=False)
                                for rs, rp in rights:
                                    out.add((ls + op + _wrap(rs, rp, op, right=True), _PREC[op]))
        memo[key] = out
        return out

    return {s for s, _ in exprs(values, Fraction(target))}


@functools.lru_cache(maxsize=2048)
def _solutions(values: tuple[int, ...], target: int) -> tuple[str, ...]:
    """Sorted solution strings for a sorted multiset (sorted, so prefix lookups can bisect)."""
    if not _reaches(values, Fraction(target)):
        return ()
    found = _pattern_solutions(values, target) if len(values) == 4 else _tree_solutions(values, target)
    return tuple(sorted(found))


def solve(values, target: int = 24) -> list[str]:
    """Every solution string (no spaces) for these card values; 4 cards give the paper's solver set."""
    return list(_solutions(tuple(sorted(int(v) for v in values)), int(target)))


def solvable(values, target: int = 24) -> bool:
    """Whether some formula over these card values reaches the target (cached per multiset)."""
    return _reaches(tuple(sorted(int(v) for v in values)), Fraction(int(target)))


def _has_prefix(solutions: tuple[str, ...], prefix: str) -> bool:
    i = bisect.bisect_left(solutions, prefix)
    return i < len(solutions) and solutions[i].startswith(prefix)


# ---------------------------------------------------------------------------------------------------------------
# Sampler (SFTvsRL's gym/gym_cards/envs/general_points_oneline.py) and held-out split (rlexp's own)


class Deal(NamedTuple):
    ranks: list[int]
    suits: list[str]
    values: list[int]


_MAX_DRAWS = 20_000


def card_value(rank: int, rule: str) -> int:
    return min(rank, 10) if rule == "face10" else rank


def _distinct_orderings(values: list[int]) -> int:
    count = math.factorial(len(values))
    for k in Counter(values).values():
        count //= math.factorial(k)
    return count


def deal(
    rng: random.Random,
    *,
    rule: str,
    num_cards: int,
    target: int,
    suits=MIXED_SUITS,
    reject: Optional[Callable[[list[int]], bool]] = None,
) -> Deal:
    """One episode of the paper's sampler: redraw until solvable (and not rejected), RNG calls in paper order."""
    for _ in range(_MAX_DRAWS):
        if rule == "face10":
            ranks = [rng.randint(1, 13) for _ in range(num_cards)]
        else:  # at least one face card
            ranks = [rng.randint(1, 13) for _ in range(num_cards - 1)] + [rng.randint(11, 13)]
            rng.shuffle(ranks)
        card_suits = [rng.choice(suits) for _ in range(num_cards)]
        values = [card_value(r, rule) for r in ranks]
        # The original solver shuffles its list of distinct permutations before searching. Only the list's
        # length matters to the RNG, so shuffle a stand-in to keep the stream in step with the paper.
        rng.shuffle([None] * _distinct_orderings(values))
        if solvable(values, target) and not (reject and reject(values)):
            return Deal(ranks, card_suits, values)
    raise ValueError(
        f"no solvable deal found in {_MAX_DRAWS} draws for target={target} with num_cards={num_cards} and "
        f"rule {rule!r}; use a smaller target or more cards"
    )


def paper_stream(seed: int, **kwargs):
    """Episodes as the paper's evaluator sees them: the env's constructor already dealt once."""
    rng = random.Random(seed)
    deal(rng, **kwargs)
    while True:
        yield deal(rng, **kwargs)


def heldout_key(target: int, rule: str, values) -> str:
    return f"{target}|{rule}|{','.join(str(v) for v in sorted(values))}"


def is_heldout(key: str, salt: str = HELDOUT_SALT, eval_frac: float = HELDOUT_FRAC) -> bool:
    u = int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:8], 16) / 2**32
    return u < eval_frac


def heldout_multisets(target: int, num_cards: int, rule: str = "face10") -> list[tuple[int, ...]]:
    """Every solvable multiset of the rule's value domain whose key lands in the held-out part."""
    domain = range(1, 11) if rule == "face10" else range(1, 14)
    out = []
    for ms in itertools.combinations_with_replacement(domain, num_cards):
        if rule == "face_ood" and max(ms) < 11:
            continue
        if is_heldout(heldout_key(target, rule, ms)) and solvable(ms, target):
            out.append(ms)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Prompts and target response (SFTvsRL's prompt_lib/prompts.py: Q_GeneralPoint_EQN_L and Q_GeneralPoint_EQN_VL)

_TASK = (
    "\n[Task Description]\n"
    "You are an expert {target} points card game player. {seeing}\n"
    "Note that {face_card_msg}, and each card must be used once.\n"
    "Your goal is to output a formula that evaluates to {target} using numbers from the cards and operators such "
    "as '+', '-', '*', '/', '(', ')', and '='.\n"
    "\n"
)
_INPUT = "[Input]\nCards: {cards}\n\n"
_OUTPUT = (
    "[Output]\n"
    "{json_line}"
    "{{\n"
    '  "cards": [{card_vars}], where {face_card_msg},\n'
    '  "number": [{number_vars}], where {number_phrase},\n'
    "  \"formula\": 'an equation that equals {target}',\n"
    "}}\n"
    "\n"
)
# GP-L lists the cards in the text; GP-VL shows them in the image only, and asks for JSON in so many words
_PROMPT = _TASK + _INPUT + _OUTPUT
_PROMPT_VL = _TASK + _OUTPUT
_JSON_LINE_VL = "Your response should be a valid json file in the following format:\n"
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_RESPONSE = '\n{{\n  "cards": {cards},\n  "number": {numbers},\n  "formula": "{formula}",\n}}'

_CARD_VARS = "xyzwvu"
_NUMBER_VARS = "abcdef"


def rank_name(rank: int) -> str:
    return _RANK_NAMES.get(rank, str(rank))


def card_id(suit: str, rank: int) -> str:
    return suit + ("T" if rank == 10 else rank_name(rank))


def _spoken_list(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + ", and " + names[-1]


def render_prompt(cards: list[str], target: int, rule: str, visual: bool = False) -> str:
    """The paper's prompt: GP-L's, or with `visual` GP-VL's, which leaves the cards to the image."""
    n = len(cards)
    letters = list(_NUMBER_VARS[:n])
    number_phrase = "a is the number on the card" if n == 1 else f"{_spoken_list(letters)} are the numbers on the cards"
    if visual:
        shown = "this card" if n == 1 else f"these {_NUMBER_WORDS[n]} cards"
        seeing = f"You are observing {shown} in the image."
    else:
        seeing = f"You will receive a set of {'1 card' if n == 1 else f'{n} cards'}."
    return (_PROMPT_VL if visual else _PROMPT).format(
        target=target,
        seeing=seeing,
        face_card_msg=FACE_CARD_MSG[rule],
        cards=repr(list(cards)),
        json_line=_JSON_LINE_VL if visual else "",
        card_vars=", ".join(_CARD_VARS[:n]),
        number_vars=", ".join(letters),
        number_phrase=number_phrase,
    )


SHORT_FACE_MSG = {"face10": "J, Q, K count as 10.", "face_ood": "J, Q, K count as 11, 12, 13."}


def render_short_prompt(cards: list[str], target: int, rule: str, visual: bool = False) -> str:
    """A compact prompt with the same facts (cards, target, face rule), for small models: the paper's
    template is ~550 fixed characters, which a tiny model must read past on every sample. With `visual` the
    cards are only in the image."""
    shown = "in the image" if visual else repr(list(cards))
    return f"Cards: {shown}\nMake {target} using each card once. {SHORT_FACE_MSG[rule]}\n"


def render_response(cards: list[str], values: list[int], formula: str, target: int) -> str:
    return _RESPONSE.format(cards=repr(list(cards)), numbers=repr(list(values)), formula=f"{formula}={target}")


# ---------------------------------------------------------------------------------------------------------------
# Response parsing

_MAX_COMPLETION_CHARS = 64 * 1024
_FENCE = re.compile(r"```[A-Za-z0-9_-]*")
_LAST_KEY = {key: re.compile(rf"""(?s:.*)(["']{key}["']\s*:)""") for key in ("formula", "cards")}
_FIELD = re.compile(r"""["']formula["']\s*:\s*(["'])(.*?)\1""")
_CARDS_FIELD = re.compile(r"""["']cards["']\s*:\s*\[([^\]]*)\]""")
_ORIGINAL_FIELD = re.compile(r'"formula": "(.*?)"')
_ORIGINAL_CARDS = re.compile(r'"cards": \[([^\]]+)\]')
_TRAILING_COMMA = re.compile(r",\s*(?=[}\]])")
_JSON = json.JSONDecoder()
_OBJECT_TRIES = 8
# how else a model may name a rank in its `cards` (upper-cased, quotes stripped)
_RANK_ALIASES = {"T": "10", "1": "A", "ACE": "A", "JACK": "J", "QUEEN": "Q", "KING": "K"}
_QUOTES = "'\"`‘’“”"


def _object_with_key(text: str, key_pos: int, key: str) -> Optional[dict]:
    """The innermost JSON object around the key at `key_pos`: try the nearest `{` to its left, then the next."""
    start = key_pos
    for _ in range(_OBJECT_TRIES):
        start = text.rfind("{", 0, start)
        if start < 0:
            return None
        try:
            obj, end = _JSON.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and end > key_pos and key in obj:
            return obj
    return None


def _answer_text(completion: str) -> str:
    """What the answer's fields are read from: the text after the reasoning, its tail, without code fences."""
    _, text = split_think(completion)
    return _FENCE.sub("", text[-_MAX_COMPLETION_CHARS:])


def _decoded_field(text: str, key: str) -> tuple[bool, Any]:
    """(found, value) of `key` in the JSON object around its last occurrence."""
    # Removing trailing commas only deletes characters outside any sensible string, so the last key stays the
    # last key and JSON written with trailing commas (the paper's own answer format) decodes.
    lenient = _TRAILING_COMMA.sub("", text)
    lenient_key = _LAST_KEY[key].match(lenient)
    obj = _object_with_key(lenient, lenient_key.start(1), key) if lenient_key else None
    return (False, None) if obj is None else (True, obj[key])


def extract_formula(completion: str) -> Optional[str]:
    """The `formula` string of the last object that has one; None when missing."""
    text = _answer_text(completion)
    last = _LAST_KEY["formula"].match(text)
    if last is None:
        return None
    found, formula = _decoded_field(text, "formula")
    if found:
        return formula if isinstance(formula, str) else None
    field = _FIELD.match(text, last.start(1))  # single quotes, or JSON broken elsewhere
    return field.group(2) if field else None


def card_names(cards: Any) -> Optional[list[str]]:
    """Ranks as the rows write them ("A", "2".."10", "J", "Q", "K") from a `cards` list or list-like string, leniently:
    ints or strings in any quotes, any case, T for ten, 1 or Ace for A, Jack/Queen/King. None when it is neither."""
    if isinstance(cards, str):
        inner = cards.strip().strip("[]").strip()
        cards = inner.split(",") if inner else []
    if not isinstance(cards, list):
        return None
    names = []
    for card in cards:
        if isinstance(card, bool) or not isinstance(card, (int, str)):
            return None
        name = unicodedata.normalize("NFKC", str(card)).strip().strip(_QUOTES).strip().upper()
        names.append(_RANK_ALIASES.get(name, name))
    return names


def extract_cards(completion: str) -> Optional[list[str]]:
    """The `cards` of the last object that has them, as `card_names` reads them; None when missing."""
    text = _answer_text(completion)
    last = _LAST_KEY["cards"].match(text)
    if last is None:
        return None
    found, cards = _decoded_field(text, "cards")
    if not found:  # single quotes (the paper's own answer format), or JSON broken elsewhere
        field = _CARDS_FIELD.match(text, last.start(1))
        cards = field.group(1) if field else None
    return card_names(cards)


def _original_formula(completion: str) -> Optional[str]:
    """The original parser (SFTvsRL's utils_general.re_match): whole-text JSON, else a strict regex; the formula
    is cut at its first "=". None when there is none (the original used the string "None", which fails as
    "illegal characters" too) or when it is not a string (the original crashed)."""
    try:
        formula = json.loads(completion)["formula"]
    except Exception:
        match = _ORIGINAL_FIELD.search(completion)
        formula = match.group(1) if match else None
    return formula.split("=")[0] if isinstance(formula, str) else None


def _original_cards(completion: str, num_cards: int) -> list[str]:
    """The original's reading of `cards` (SFTvsRL's utils_general.re_match and robust_str_to_list): whole-text JSON,
    else a strict regex; only a string survives, stripped of brackets, single quotes and spaces and split on commas,
    and only with one item per card (4 in the original), else []. So JSON lists, double quotes and an all-number
    list written with ", " all fail."""
    try:
        cards = json.loads(completion)["cards"]
    except Exception:
        match = _ORIGINAL_CARDS.search(completion)
        if match is None:
            return []
        try:
            cards = [int(item) for item in match.group(1).split(", ")]
        except ValueError:
            cards = "[" + match.group(1) + "]"
    if not isinstance(cards, str):
        return []
    items = cards.replace("[", "").replace("]", "").replace("'", "").replace(" ", "").split(",")
    return items if len(items) == num_cards else []


# ---------------------------------------------------------------------------------------------------------------
# Verifier (SFTvsRL's utils_rl.step_rewards; robust mode's fixes are rlexp's own)


class Verdict(NamedTuple):
    category: str  # the REWARDS key of the first failing check (or of the success)
    reward: float  # paper reward
    verify_info: str
    formula: Optional[str]  # the formula as checked (normalised in robust mode)
    value: Optional[str]  # its value when it was evaluated


def _fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _safe_int(tok: str) -> int | str:
    """The token's integer value, as the original's int() reads it (leading zeros, any Unicode digits), up to
    Python's integer-string limit (sys.get_int_max_str_digits(), 4300 digits by default). A longer token made
    the original raise; here it stays a string, which no card value equals."""
    try:
        return int(tok)
    except ValueError:
        return tok


def _unique(items) -> list:
    return list(dict.fromkeys(items))


Message = tuple[str, str]  # (category, feedback), worth REWARDS[category]


def _verdict(messages: list[Message], formula: Optional[str], value: Any = None, notes: tuple = ()) -> Verdict:
    """The paper's verdict: the first message names the category, every message adds its reward."""
    shown = None if value is None else _fmt_value(value)
    if not messages:  # compat mode's float false negative: nothing flagged, nothing earned
        return Verdict("NO_SOLUTION", 0.0, ", ".join(notes) + ".", formula, shown)
    reward = sum(REWARDS[category] for category, _ in messages)
    verify_info = ", ".join([message for _, message in messages] + list(notes)) + "."
    return Verdict(messages[0][0], reward, verify_info, formula, shown)


def _clean(formula: str, target: int) -> tuple[str, str]:
    """Robust mode's reading of the formula: normalised, a side "= target" dropped, length capped.
    Returns (the formula as far as it was cleaned, the problem or "")."""
    formula = normalize_formula(formula)
    if formula.count("=") > 1:
        return formula, "illegal characters"
    if "=" in formula:
        left, right = formula.split("=")
        formula = right if left == str(target) else left
    if not formula:
        return formula, "no formula found"
    if len(formula) > _MAX_FORMULA_CHARS:
        return formula, "formula too long"
    return formula, ""


def _tokenize(formula: str, robust: bool) -> Optional[list[str]]:
    """Numbers, operators and brackets; None when anything else is left over."""
    tokens = (_TOKEN_ROBUST if robust else _TOKEN_ORIGINAL).findall(formula)
    return tokens if "".join(tokens) == formula else None


def _grammar_problems(tokens: list[str], robust: bool) -> list[Message]:
    """-3 per violation, accumulated. As in the authors' check order, only a valid "(" opens a bracket and only a
    valid ")" closes one: a bracket reported as an invalid sequence leaves the depth unchanged."""
    problems = []
    prev = None  # None (start), "num", "op", "(", ")"
    depth = 0
    for tok in tokens:
        if tok in _OPS:
            if prev not in ("num", ")"):
                problems.append(("ILLEGAL_FORMULA", "invalid sequence after operator"))
            prev = "op"
        elif tok == "(":
            if prev in (None, "op", "("):
                depth += 1
            else:
                problems.append(("ILLEGAL_FORMULA", "invalid sequence before '('"))
            prev = "("
        elif tok == ")":
            if prev not in ("num", ")"):
                problems.append(("ILLEGAL_FORMULA", "invalid sequence after ')'"))
            elif depth == 0:
                problems.append(("ILLEGAL_FORMULA", "unmatched closing parenthesis"))
            else:
                depth -= 1
            prev = ")"
        else:
            if prev not in (None, "op", "("):
                problems.append(("ILLEGAL_FORMULA", "invalid sequence after number"))
            if robust and not _VALID_NUMBER.fullmatch(tok):
                problems.append(("ILLEGAL_FORMULA", f"invalid number {tok}"))
            prev = "num"
    if robust and depth > 0:
        problems.append(("ILLEGAL_FORMULA", "unmatched opening parenthesis"))
    if robust and prev == "op":
        problems.append(("ILLEGAL_FORMULA", "incomplete formula"))
    return problems


def _number_problems(tokens: list[str], values: list[int]) -> list[Message]:
    """The formula's numbers against the dealt values (multisets), -2 each."""
    problems = []
    numbers = [_safe_int(t) for t in tokens if t not in _OPS and t not in "()"]
    have, used = Counter(values), Counter(numbers)
    invalid = _unique(n for n in numbers if n not in have)
    if invalid:
        problems.append(("INCORRECT_NUMBER", f"you used invalid numbers: {invalid}"))
    else:
        too_many = _unique(n for n in numbers if used[n] > have[n])
        if too_many:
            problems.append(("INCORRECT_NUMBER", f"you used numbers: {too_many} too many times"))
    unused = _unique(v for v in values if used[v] < have[v])
    if unused:
        problems.append(("INCORRECT_NUMBER", f"you didn't use numbers: {unused}"))
    return problems


def _prefix_feedback(tokens: list[str], solutions: tuple[str, ...]) -> list[Message]:
    """The paper's signal of how far the formula follows some solution (it never shows one)."""
    prefix = ""
    for i, tok in enumerate(tokens):
        if not _has_prefix(solutions, prefix + tok):
            if i == 0:
                return [("NO_SOLUTION", "your formula does not match any solution")]
            return [("NO_SOLUTION", f"{prefix} is partially correct but the full formula does not match any solution")]
        prefix += tok
    return []


def verify(
    formula: Optional[str], values: list[int], target: int, *, strict_original: bool = False, feedback_detail: bool = False
) -> Verdict:
    """Check a formula against the dealt values: the paper's accumulating checks; robust mode adds rlexp's
    fixes and evaluates exactly. `formula` None means the answer had no usable formula string.

    Phases: clean (robust mode), tokenize, grammar and numbers (their problems add up), evaluate, compare with the
    target, and last the prefix feedback against the solver's solutions."""
    robust = not strict_original
    if formula is None:
        return _verdict([("ILLEGAL_FORMULA", "no formula found" if robust else "illegal characters")], formula)
    if robust:
        formula, problem = _clean(formula, target)
        if problem:
            return _verdict([("ILLEGAL_FORMULA", problem)], formula)

    tokens = _tokenize(formula, robust)
    if tokens is None:
        return _verdict([("ILLEGAL_FORMULA", "illegal characters")], formula)
    if robust and len(tokens) > _MAX_TOKENS:
        return _verdict([("ILLEGAL_FORMULA", "formula too long")], formula)

    problems = _grammar_problems(tokens, robust) + _number_problems(tokens, values)
    if problems:
        return _verdict(problems, formula)

    value: Any = None
    try:
        value = _exact_value(tokens) if robust else _python_value(tokens)
    except ZeroDivisionError:
        if robust:
            return _verdict([("ILLEGAL_FORMULA", "division by zero")], formula)
    except _FormulaError:
        pass  # robust mode never gets here: the grammar pass rejects every malformed formula

    if value is not None and value == target:
        return _verdict([("CORRECT_SOLUTION", "Correct solution")], formula, value)
    solutions = _solutions(tuple(sorted(values)), target)
    if value is None and not robust and _has_prefix(solutions, formula):
        return _verdict([("PARTIAL_SOLUTION", "partial solution")], formula)  # the original's reward hack, kept

    feedback = _prefix_feedback(tokens, solutions)
    if robust and not feedback:  # unreachable for complete formulas; a wrong value must never score 0
        feedback = [("NO_SOLUTION", "your formula does not match any solution")]
    notes = ()
    if feedback_detail and value is not None:
        notes = (f"your formula evaluates to {_fmt_value(value)}, not {target}",)
    return _verdict(feedback, formula, value, notes)


# ---------------------------------------------------------------------------------------------------------------
# Environment


def _check_choice(knob: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{knob} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def _check_int(knob: str, value: Any, low: Optional[int] = None, high: Optional[int] = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return
    if high is not None:
        need = f"an integer from {low} to {high}"
    elif low is not None:
        need = f"an integer >= {low}"
    else:
        need = "an integer"
    raise ValueError(f"{knob} must be {need}; got {value!r}.")


@register("generalpoints")
@dataclass
class GeneralPoints(Env):
    """The GeneralPoints game: the text variant (GP-L), or with visual=true the vision-language one (GP-VL).

    Splits: "train" (`train_size` deals under `face_rule`, sampler seed `seed`), "id" (face10) and "ood"
    (face_ood), each `eval_size` paper-sampler episodes from `eval_seed`. With split="heldout_multisets" the
    training sampler rejects held-out face10 multisets and "id" holds every held-out multiset once instead.
    GP-VL deals black suits and adds "visual_ood": the deals of "id" in red suits.
    """

    # the number the formula must make
    target: int = 24
    # cards dealt per game, 1 to 6
    num_cards: int = 4
    face_rule: str = "face10"  # training rule; eval splits cover both rules
    split: str = "iid"  # "iid" (paper sampler) | "heldout_multisets" (held-out value multisets)
    reward_mode: str = "paper"  # "paper" (+5/+1/-1/-2/-3, accumulating) | "binary" (1/0)
    strict_original: bool = False  # reproduce the original parser and verifier quirks
    feedback_detail: bool = False  # also say what the formula evaluates to
    reveal_solution: bool = False  # a failed trial's feedback also shows one solution (for a self-teacher: algo=sdpo)
    prompt_style: str = "paper"  # "paper" (the paper's template, byte-exact) | "short" (same facts, ~60 chars)
    # GP-VL: the cards are shown in an image (rlexp/envs/card_images.py) rather than listed, and the answer must name
    # them (its `cards`) before its formula counts; needs a model that reads images (e.g. model=tiny_vl)
    visual: bool = False
    # training deals
    train_size: int = 2000
    # evaluation deals per split (the paper's 234)
    eval_size: int = 234
    # seed of the evaluation deals (42 gives the paper's)
    eval_seed: int = 42
    seed: int = 0  # training sampler

    def __post_init__(self) -> None:
        _check_int("target", self.target, low=1)
        _check_int("num_cards", self.num_cards, low=1, high=MAX_CARDS)
        _check_choice("face_rule", self.face_rule, FACE_RULES)
        _check_choice("split", self.split, SPLIT_MODES)
        _check_choice("reward_mode", self.reward_mode, REWARD_MODES)
        _check_choice("prompt_style", self.prompt_style, ("paper", "short"))
        for knob in ("strict_original", "feedback_detail", "reveal_solution", "visual"):
            if not isinstance(getattr(self, knob), bool):
                raise ValueError(f"{knob} must be true or false; got {getattr(self, knob)!r}.")
        _check_int("train_size", self.train_size, low=0)
        _check_int("eval_size", self.eval_size, low=0)
        _check_int("eval_seed", self.eval_seed)
        _check_int("seed", self.seed)
        self._rows: dict = {}

    @property
    def success_value(self) -> float:  # type: ignore[override]
        return REWARDS["CORRECT_SOLUTION"] if self.reward_mode == "paper" else 1.0

    def eval_splits(self) -> list[str]:
        return ["id", "ood", "visual_ood"] if self.visual else ["id", "ood"]

    def has_images(self) -> bool:
        return self.visual

    def split_metrics(self, scores: list[Score]) -> dict[str, float]:
        """GP-VL's recognition accuracy: the share of samples whose `cards` are the dealt ones (the paper's, per step)."""
        if not self.visual or not scores:
            return {}
        wrong = sum(s.info.get("category") == "INCORRECT_VISION" for s in scores)
        return {"recognition_accuracy": 1 - wrong / len(scores)}

    # -- rows ------------------------------------------------------------------------------------------------

    def _row(self, d: Deal, rule: str) -> dict:
        cards = [rank_name(r) for r in d.ranks]
        card_ids = [card_id(s, r) for s, r in zip(d.suits, d.ranks)]
        render = render_prompt if self.prompt_style == "paper" else render_short_prompt
        text = render(cards, self.target, rule, self.visual)
        # GP-VL: the image comes before the text, in the first user turn only (later turns are feedback)
        content = [{"type": "image"}, {"type": "text", "text": text}] if self.visual else text
        row = {
            "prompt": [{"role": "user", "content": content}],
            "cards": cards,
            "card_ids": card_ids,
            "values": list(d.values),
            "target": self.target,
            "rule": rule,
            "split_key": heldout_key(self.target, rule, d.values),
        }
        if self.visual:  # as PNG bytes, about 60 KB, where a decoded picture takes 4 MB
            from rlexp.envs.card_images import render_png

            row["images"] = [{"bytes": render_png(card_ids), "path": None}]
        return row

    def _suits(self, split: str) -> tuple[str, ...]:
        if not self.visual:
            return MIXED_SUITS
        return RED_SUITS if split == "visual_ood" else BLACK_SUITS

    def _deals(self, split: str) -> tuple[list[Deal], str]:
        common = {"num_cards": self.num_cards, "target": self.target, "suits": self._suits(split)}
        if split == "train":
            reject = self._is_heldout if self.split == "heldout_multisets" else None
            stream = paper_stream(self.seed, rule=self.face_rule, reject=reject, **common)
            return list(itertools.islice(stream, self.train_size)), self.face_rule
        if split in ("id", "visual_ood") and self.split == "heldout_multisets":
            return self._heldout_deals(self._suits(split)), "face10"
        if split in self.eval_splits():
            # visual_ood deals the same ranks as id: drawing from 2 red suits moves the RNG as 2 black ones do
            rule = "face_ood" if split == "ood" else "face10"
            return list(itertools.islice(paper_stream(self.eval_seed, rule=rule, **common), self.eval_size)), rule
        names = ", ".join(repr(name) for name in ("train", *self.eval_splits()))
        raise ValueError(f"split must be one of {names}; got {split!r}.")

    def _is_heldout(self, values: list[int]) -> bool:
        # held-out keys are face10 ones; face_ood deals (a value above 10) can never collide with them
        return self.face_rule == "face10" and is_heldout(heldout_key(self.target, "face10", values))

    def _heldout_deals(self, suit_set: tuple[str, ...]) -> list[Deal]:
        """Every held-out face10 multiset once, in a seeded card order, with 10 drawn as 10/J/Q/K."""
        rng = random.Random(self.eval_seed)
        deals = []
        for ms in heldout_multisets(self.target, self.num_cards, "face10"):
            values = list(ms)
            rng.shuffle(values)
            ranks = [rng.choice((10, 11, 12, 13)) if v == 10 else v for v in values]
            suits = [rng.choice(suit_set) for _ in values]
            deals.append(Deal(ranks, suits, values))
        return deals

    def _split_rows(self, split: str) -> list[dict]:
        key = (split, tuple(sorted(self.knobs().items())))
        if key not in self._rows:
            deals, rule = self._deals(split)
            self._rows[key] = [self._row(d, rule) for d in deals]
        return self._rows[key]

    def dataset(self, split: str) -> datasets.Dataset:
        return self._as_dataset(self._split_rows(split))

    def demonstrations(self, split: str) -> datasets.Dataset:
        out = []
        for i, row in enumerate(self._split_rows(split)):
            # one solution per row, picked by a seeded RNG so reruns give the same data
            pick = random.Random(f"gp-demo|{self.seed}|{split}|{i}")
            formula = pick.choice(solve(row["values"], row["target"]))
            answer = render_response(row["cards"], row["values"], formula, row["target"])
            # GP-VL: content blocks like the user turn's, as a dataset column holds one type of content
            reply = [{"type": "text", "text": answer}] if self.visual else answer
            demo = {"messages": [row["prompt"][0], {"role": "assistant", "content": reply}]}
            if self.visual:
                demo["images"] = row["images"]
            out.append(demo)
        return self._as_dataset(out)

    def _as_dataset(self, rows: list[dict]) -> datasets.Dataset:
        """The rows as a dataset; GP-VL's PNG bytes become an image column, decoded to PIL images when read."""
        if not self.visual or not rows:
            return as_dataset(rows)
        import datasets

        features = as_dataset(rows[:1]).features
        features["images"] = datasets.List(datasets.Image())
        return datasets.Dataset.from_list(rows, features=features)

    # -- scoring ---------------------------------------------------------------------------------------------

    def score(self, completion: str, row: dict) -> Score:
        try:
            return self._score(completion, row)
        except Exception as exc:  # a bug must not stop training: worst reward, logged
            return Score(
                reward=REWARDS["ILLEGAL_FORMULA"] if self.reward_mode == "paper" else 0.0,
                success=False,
                feedback="You failed this trial because of an internal verifier error.",
                info={
                    "category": "ERROR",
                    "verify_info": "",
                    "formula": None,
                    "value": None,
                    "parse_ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )

    def _score(self, completion: Any, row: dict) -> Score:
        text = completion_text(completion)
        values = [int(v) for v in row["values"]]
        target = int(row.get("target", self.target))
        if self.strict_original:
            formula = _original_formula(text[-_MAX_COMPLETION_CHARS:])
        else:
            formula = extract_formula(text)
        recognized = self._recognized_cards(text, len(values)) if self.visual else None
        if self.visual and sorted(recognized or []) != sorted(row["cards"]):
            # GP-VL checks the cards first and stops there (no trailing period, as in the original)
            verdict = Verdict("INCORRECT_VISION", REWARDS["INCORRECT_VISION"], "you recognized wrong cards", formula, None)
        else:
            verdict = verify(formula, values, target, strict_original=self.strict_original, feedback_detail=self.feedback_detail)
        success = verdict.category == "CORRECT_SOLUTION"
        if self.reward_mode == "paper":
            reward = verdict.reward
        else:
            reward = 1.0 if success else 0.0
        feedback = "" if success else "You failed this trial because " + verdict.verify_info
        if self.reveal_solution and not success:
            solutions = solve(values, target)
            feedback += f" One solution is {solutions[0]}." if solutions else " These cards have no solution."
        return Score(
            reward=reward,
            success=success,
            feedback=feedback,
            info={
                "category": verdict.category,
                "verify_info": verdict.verify_info,
                "formula": printable(verdict.formula),
                "value": verdict.value,
                "parse_ok": formula is not None,
                **({"cards": recognized} if self.visual else {}),
            },
        )

    def _recognized_cards(self, text: str, num_cards: int) -> Optional[list[str]]:
        """The answer's `cards`, as the original reads them (strict_original) or leniently; None or [] when missing."""
        if self.strict_original:
            return _original_cards(text[-_MAX_COMPLETION_CHARS:], num_cards)
        return extract_cards(text)


__all__ = [
    "REWARDS",
    "FACE_CARD_MSG",
    "GeneralPoints",
    "Deal",
    "Verdict",
    "deal",
    "paper_stream",
    "solve",
    "solvable",
    "verify",
    "extract_formula",
    "extract_cards",
    "card_names",
    "normalize_formula",
    "render_prompt",
    "render_response",
    "rank_name",
    "card_id",
    "card_value",
    "heldout_key",
    "is_heldout",
    "heldout_multisets",
]
