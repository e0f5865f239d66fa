"""GeneralPoints: solver, sampler, prompts, parser and verifier against the paper (arXiv 2501.17161) and the
behaviour of its authors' code, LeslieTrue/SFTvsRL."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
import time
from fractions import Fraction

import pytest

from rlexp.envs import generalpoints as gp
from rlexp.envs import make

CARDS = {"values": [4, 3, 2, 10], "target": 24}
EIGHTS = {"values": [3, 3, 8, 8], "target": 24}


def answer(formula) -> str:
    return json.dumps({"formula": formula})


@pytest.fixture(scope="module")
def robust():
    return make("generalpoints")


@pytest.fixture(scope="module")
def compat():
    return make("generalpoints", strict_original=True)


# -- solver (the authors' solver, LeslieTrue/SFTvsRL) ---------------------------------------------------------------------------------------


def test_solvable_multiset_counts():
    multisets = list(itertools.combinations_with_replacement(range(1, 14), 4))
    solvable = {ms: gp.solvable(ms, 24) for ms in multisets}
    assert sum(solvable[ms] for ms in multisets if max(ms) <= 10) == 566
    assert sum(solvable.values()) == 1362
    assert sum(solvable[ms] for ms in multisets if max(ms) >= 11) == 796


def test_solver_strings():
    sols = gp.solve([4, 3, 2, 10])
    assert {"4*3+2+10", "(4*3+2)+10", "(4*3)+(2+10)", "10+2+4*3", "4*3+(2+10)"} <= set(sols)
    assert "((4*3)+2)+10" not in sols and "(4*3+2+10)" not in sols  # no such bracket pattern
    assert all(" " not in s for s in sols)
    assert gp.solve([3, 3, 8, 8]) == ["8/(3-8/3)"]
    assert gp.solve([1, 1, 1, 1]) == []


def test_pattern_solver_agrees_with_tree_search():
    rng = random.Random(7)
    for _ in range(40):
        values = [rng.randint(1, 13) for _ in range(4)]
        target = rng.choice([24, 10, 36])
        sols = gp.solve(values, target)
        assert bool(sols) == gp.solvable(values, target)
        for s in sols[:20]:
            assert gp.verify(s, values, target).category == "CORRECT_SOLUTION"


@pytest.mark.parametrize(
    "values,target", [([5], 5), ([3, 8], 24), ([2, 3, 4], 24), ([1, 2, 3, 4, 5], 24), ([13, 13, 12, 11, 1, 2], 24)]
)
def test_solver_other_card_counts(values, target):
    sols = gp.solve(values, target)
    assert sols, values
    assert len(set(sols)) == len(sols)
    for s in sols[:: max(1, len(sols) // 50)]:
        assert " " not in s
        verdict = gp.verify(s, values, target)
        assert verdict.category == "CORRECT_SOLUTION", (s, verdict)


def _all_trees(values):
    """(value, string, precedence) of every expression tree over this card order, rendered with fewest brackets."""
    if len(values) == 1:
        yield Fraction(values[0]), str(values[0]), 3
        return
    prec = {"+": 1, "-": 1, "*": 2, "/": 2}
    for i in range(1, len(values)):
        for lv, ls, lp in _all_trees(values[:i]):
            for rv, rs, rp in _all_trees(values[i:]):
                for op in "+-*/":
                    if op == "/" and rv == 0:
                        continue
                    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else None}[op]
                    left = f"({ls})" if lp < prec[op] else ls
                    right = f"({rs})" if rp < prec[op] or (rp == prec[op] and op in "-/") else rs
                    yield value, left + op + right, prec[op]


@pytest.mark.parametrize(
    "values,target",
    [([3, 6, 10], 24), ([8, 7, 11], 12), ([10, 5, 5], 1), ([3] * 5, 24), ([1, 1, 1, 1, 13], 24), ([2] * 6, 16), ([4, 6], 24)],
)
def test_tree_solver_matches_brute_force(values, target):
    brute = {s for perm in set(itertools.permutations(values)) for v, s, _ in _all_trees(perm) if v == target}
    assert set(gp.solve(values, target)) == brute


def test_tree_solutions_use_fewest_parentheses():
    sols = set(gp.solve([2, 3, 4], 24))
    assert "2*3*4" in sols and "(2+4)*4" not in sols
    assert "4*(2+3)" not in sols  # 20
    assert not any(s.startswith("(2*3)") for s in sols)


# -- sampler (the authors' seed-42 sampler) --------------------------------------------------------------------------------------


def test_first_five_episodes_match_paper():
    env = make("generalpoints", eval_size=5)
    ids = [" ".join(r["card_ids"]) for r in env.dataset("id")]
    ood = [" ".join(r["card_ids"]) for r in env.dataset("ood")]
    assert ids == ["HK C5 D2 C4", "D7 S5 C2 C4", "SA HQ DQ S5", "SK H5 H4 CA", "S2 S6 HA HT"]
    assert ood == ["HQ C2 H7 D6", "SJ CQ CJ DJ", "DJ HA SK DK", "S7 CQ HT HK", "H8 D3 SK SA"]


@pytest.mark.parametrize(
    "suits,expected",
    [
        (("S", "C"), ["SK C5 C2 C4", "C7 S5 C2 C4", "SA SQ CQ S5", "SK S5 S4 CA", "S2 S6 SA ST"]),
        (("H", "D"), ["HK D5 D2 D4", "D7 H5 D2 D4", "HA HQ DQ H5", "HK H5 H4 DA", "H2 H6 HA HT"]),
    ],
)
def test_first_five_episodes_other_suit_sets(suits, expected):
    stream = gp.paper_stream(42, rule="face10", num_cards=4, target=24, suits=suits)
    got = [" ".join(gp.card_id(s, r) for s, r in zip(d.suits, d.ranks)) for d in itertools.islice(stream, 5)]
    assert got == expected


def test_paper_eval_splits_have_the_papers_statistics():
    env = make("generalpoints")
    ids, ood = env.dataset("id"), env.dataset("ood")
    assert len(ids) == len(ood) == 234
    assert len({tuple(sorted(v)) for v in ids["values"]}) == 149
    assert len({tuple(sorted(v)) for v in ood["values"]}) == 195


def test_sampler_solvable_probabilities():
    id_draws = itertools.product(range(1, 14), repeat=4)
    p_id = sum(gp.solvable([min(r, 10) for r in ranks]) for ranks in id_draws) / 13**4
    ood_draws = itertools.product(range(1, 14), range(1, 14), range(1, 14), range(11, 14))
    p_ood = sum(gp.solvable(ranks) for ranks in ood_draws) / (13**3 * 3)
    assert round(p_id, 3) == 0.731 and round(p_ood, 3) == 0.731


def test_rows_carry_values_and_keys():
    env = make("generalpoints", eval_size=5)
    row = env.dataset("id")[0]
    assert set(row) == {"prompt", "cards", "card_ids", "values", "target", "rule", "split_key"}
    assert row["cards"] == ["K", "5", "2", "4"]
    assert row["values"] == [10, 5, 2, 4]
    assert row["target"] == 24 and row["rule"] == "face10"
    assert row["split_key"] == "24|face10|2,4,5,10"
    ood = env.dataset("ood")[0]
    assert ood["values"] == [12, 2, 7, 6] and ood["rule"] == "face_ood"
    assert row["prompt"][0]["role"] == "user"


@pytest.mark.parametrize(
    "n,target,split",
    [(1, 5, "id"), (1, 12, "ood"), (2, 20, "id"), (2, 20, "ood"), (3, 24, "id"), (3, 24, "ood"), (5, 24, "id"), (5, 24, "ood")],
)
def test_other_card_counts_sample_solvable_deals(n, target, split):
    env = make("generalpoints", num_cards=n, target=target, eval_size=4)
    rows = env.dataset(split)
    for row in rows:
        assert len(row["cards"]) == len(row["card_ids"]) == n
        assert gp.solvable(row["values"], target)
        assert (max(row["values"]) >= 11) == (split == "ood")


# -- prompts and responses (the paper's templates) -------------------------------------------------------------------------

SPEC_PROMPT = (
    "\n[Task Description]\nYou are an expert {target_number} points card game player. You will receive a set of 4 "
    "cards.\nNote that {face_card_msg}, and each card must be used once.\nYour goal is to output a formula that "
    "evaluates to {target_number} using numbers from the cards and operators such as '+', '-', '*', '/', '(', ')', "
    "and '='.\n\n[Input]\nCards: {cards}\n\n[Output]\n{{\n  \"cards\": [x, y, z, w], where {face_card_msg},\n  "
    '"number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,\n  "formula": \'an equation that '
    "equals {target_number}',\n}}\n\n"
)


@pytest.mark.parametrize(
    "rule,msg",
    [
        ("face10", "'J', 'Q', and 'K' count as '10'."),
        ("face_ood", "'J', 'Q', and 'K' count as '11', '12', and '13' respectively."),
    ],
)
def test_prompt_byte_exact(rule, msg):
    cards = ["A", "3", "K", "10"]
    expected = SPEC_PROMPT.format(target_number=24, face_card_msg=msg, cards=repr(cards))
    assert gp.render_prompt(cards, 24, rule) == expected
    assert expected.startswith("\n[Task Description]\n") and expected.endswith("}\n\n")
    if rule == "face10":
        assert "count as '10'., and each card" in expected and "count as '10'.,\n" in expected


def test_dataset_prompt_is_rendered_from_row():
    env = make("generalpoints", eval_size=2)
    for split, msg in (("id", gp.FACE_CARD_MSG["face10"]), ("ood", gp.FACE_CARD_MSG["face_ood"])):
        row = env.dataset(split)[1]
        expected = SPEC_PROMPT.format(target_number=24, face_card_msg=msg, cards=repr(row["cards"]))
        assert row["prompt"] == [{"role": "user", "content": expected}]


def test_prompt_other_card_counts():
    three = gp.render_prompt(["A", "3", "K"], 12, "face10")
    assert "a set of 3 cards." in three and "[x, y, z], where" in three
    assert "[a, b, c], where a, b, and c are the numbers on the cards," in three
    assert "evaluates to 12 using" in three
    two = gp.render_prompt(["A", "3"], 4, "face10")
    assert "[a, b], where a and b are the numbers" in two
    one = gp.render_prompt(["5"], 5, "face10")
    assert "a set of 1 card." in one and "[a], where a is the number on the card," in one
    six = gp.render_prompt(["A"] * 6, 24, "face10")
    assert "[x, y, z, w, v, u]" in six and "a, b, c, d, e, and f are" in six


def test_response_format():
    text = gp.render_response(["4", "3", "2", "K"], [4, 3, 2, 10], "4*3+2+10", 24)
    assert text == ("\n{\n  \"cards\": ['4', '3', '2', 'K'],\n  \"number\": [4, 3, 2, 10],\n  \"formula\": \"4*3+2+10=24\",\n}")


def test_demonstrations_score_as_success(robust):
    env = make("generalpoints", train_size=30, eval_size=10)
    for split in ("train", "id", "ood"):
        rows, demos = env.dataset(split), env.demonstrations(split)
        assert len(rows) == len(demos)
        for row, demo in zip(rows, demos):
            user, assistant = demo["messages"]
            assert user == row["prompt"][0] and assistant["role"] == "assistant"
            assert assistant["content"].endswith('=24",\n}')
            assert env.score(assistant["content"], row).success
    assert env.demonstrations("id")[:] == env.demonstrations("id")[:]


def test_three_card_game_end_to_end():
    env = make("generalpoints", num_cards=3, target=12, train_size=60, eval_size=30)
    for split in ("train", *env.eval_splits()):
        rows, demos = env.dataset(split), env.demonstrations(split)
        assert len(rows) > 0
        for row, demo in zip(rows, demos):
            assert len(row["values"]) == 3 and row["target"] == 12
            score = env.score(demo["messages"][1]["content"], row)
            assert score.success and score.reward == 5.0 and score.feedback == ""


# -- verifier, compat mode (the authors' check order) -------------------------------------------------------------------------------

COMPAT_TABLE = [
    ("4*3+2+10", CARDS, 5, "Correct solution."),
    ("(4*3)+2+10", CARDS, 5, "Correct solution."),
    ("((4*3+2+10))", CARDS, 5, "Correct solution."),
    ("4 * 3 + 2 + 10", CARDS, -3, "illegal characters."),
    ("4*3+2+5", CARDS, -4, "you used invalid numbers: [5], you didn't use numbers: [10]."),
    ("4*3*2", CARDS, -2, "you didn't use numbers: [10]."),
    ("24=4*3+2+10", CARDS, -4, "you used invalid numbers: [24], you didn't use numbers: [4, 3, 2, 10]."),
    ("(4*3)+(2+10", CARDS, 1, "partial solution."),
    ("(4*3+2+10", CARDS, -1, "(4*3+2 is partially correct but the full formula does not match any solution."),
    ("4*3*2*10", CARDS, -1, "4*3 is partially correct but the full formula does not match any solution."),
    ("-4+3*2*10", CARDS, -3, "invalid sequence after operator."),
    ("4**3+2+10", CARDS, -3, "invalid sequence after operator."),
    ("4*3+2+10)(", CARDS, -6, "unmatched closing parenthesis, invalid sequence before '('."),
    ("4*3+2+1O", CARDS, -3, "illegal characters."),
    (None, CARDS, -3, "illegal characters."),
    ("8/(3-8/3)", EIGHTS, 0, "."),
    ("(8/(3-8/3))", EIGHTS, -1, "your formula does not match any solution."),
    ("8/(3-3)+8", EIGHTS, -1, "8/(3- is partially correct but the full formula does not match any solution."),
    # a bracket reported as an invalid sequence neither opens nor closes (the authors' check order)
    ("4*3+2(10)", CARDS, -6, "invalid sequence before '(', unmatched closing parenthesis."),
    ("(4*)3+2+10)", CARDS, -6, "invalid sequence after ')', invalid sequence after number."),
    ("(4)(3)+2+10", CARDS, -6, "invalid sequence before '(', unmatched closing parenthesis."),
    ("4*(3+2(+10))", CARDS, -9, "invalid sequence before '(', invalid sequence after operator, unmatched closing parenthesis."),
    ("4(3+2+10", CARDS, -3, "invalid sequence before '('."),
]


@pytest.mark.parametrize("formula,row,reward,info", COMPAT_TABLE)
def test_compat_table(compat, formula, row, reward, info):
    completion = "no json, no formula" if formula is None else answer(formula)
    score = compat.score(completion, row)
    assert score.reward == reward
    assert score.info["verify_info"] == info
    assert score.success == (reward == 5)
    assert score.feedback == ("" if reward == 5 else "You failed this trial because " + info)


def test_compat_quirks(compat):
    # a non-string formula crashed the original; compat mode calls it illegal characters
    assert compat.score('{"formula": 24}', CARDS).reward == -3
    # the regex fallback needs the exact `"formula": "` spacing
    assert compat.score('{"formula":"4*3+2+10", x}', CARDS).reward == -3
    assert compat.score('Answer: {"cards": [4, 3, 2, 10], "formula": "4*3+2+10=24"} done', CARDS).reward == 5
    # leading zeros pass the number check, then Python's eval refuses them
    assert compat.score(answer("04*3+2+10"), CARDS).reward == -1
    assert compat.score(answer("4×3+2+10"), CARDS).reward == -3


def test_compat_numbers_up_to_pythons_digit_limit(compat):
    """Number tokens are read as the original's int() reads them, up to Python's integer-string limit."""
    limit = sys.get_int_max_str_digits()
    # a card value padded with leading zeros to the limit passes the number check; eval then refuses it
    padded = "0" * (limit - 1) + "4"
    score = compat.score(answer(padded + "*3+2+10"), CARDS)
    assert (score.reward, score.info["verify_info"]) == (-1, "your formula does not match any solution.")
    big = "9" * limit
    score = compat.score(answer(big + "*3+2+10"), CARDS)
    assert score.reward == -4
    assert score.info["verify_info"] == f"you used invalid numbers: [{big}], you didn't use numbers: [4]."
    # one digit more made the original raise; here it is an invalid number like any other
    score = compat.score(answer("9" + big + "*3+2+10"), CARDS)
    assert score.reward == -4 and score.info["category"] == "INCORRECT_NUMBER"


def test_compat_nesting_follows_pythons_parser(compat):
    # Python's parser takes 200 nested parentheses and refuses 201: "eval raised", then the prefix walk
    assert compat.score(answer("(" * 200 + "4*3+2+10" + ")" * 200), CARDS).reward == 5
    score = compat.score(answer("(" * 201 + "4*3+2+10" + ")" * 201), CARDS)
    assert score.reward == -1
    assert score.info["verify_info"] == "( is partially correct but the full formula does not match any solution."


# robust mode keeps its own checks but counts brackets by the same rule as the original
ROBUST_BRACKETS = [
    ("4*3+2(10)", -6, "invalid sequence before '(', unmatched closing parenthesis."),
    ("(4*)3+2+10)", -6, "invalid sequence after ')', invalid sequence after number."),
    ("4*(3+2(+10))", -9, "invalid sequence before '(', invalid sequence after operator, unmatched closing parenthesis."),
    # the rejected "(" opens nothing, so nothing is left unclosed
    ("4(3+2+10", -3, "invalid sequence before '('."),
    ("(4*3+2+10", -3, "unmatched opening parenthesis."),
    ("((4*3)+2+10", -3, "unmatched opening parenthesis."),
    ("4*3+2+10)", -3, "unmatched closing parenthesis."),
    ("(4*3)+2+10", 5, "Correct solution."),
]


@pytest.mark.parametrize("formula,reward,info", ROBUST_BRACKETS)
def test_robust_bracket_stack(robust, formula, reward, info):
    score = robust.score(answer(formula), CARDS)
    assert (score.reward, score.info["verify_info"]) == (reward, info)


def test_categories(compat):
    assert compat.score(answer("(4*3)+(2+10"), CARDS).info["category"] == "PARTIAL_SOLUTION"
    assert compat.score(answer("4*3+2+5"), CARDS).info["category"] == "INCORRECT_NUMBER"
    assert compat.score(answer("4*3*2*10"), CARDS).info["category"] == "NO_SOLUTION"
    assert compat.score(answer("4*3+2+10)("), CARDS).info["category"] == "ILLEGAL_FORMULA"
    assert compat.score(answer("4*3+2+10"), CARDS).info["category"] == "CORRECT_SOLUTION"


# -- verifier, robust mode (rlexp's fixes) ------------------------------------------------------------------------

MB = 1 << 20
HOSTILE = [
    # (completion, row, expected reward or None for "<= -3", expected verify_info prefix or None)
    ("I would play 4 times 3 plus 2 plus 10.", CARDS, -3, "no formula found"),
    ("", CARDS, -3, "no formula found"),
    ("<think>", CARDS, -3, "no formula found"),
    ("<think>hmm</think>", CARDS, -3, "no formula found"),
    ('{"formula": "4*3+2', CARDS, -3, "no formula found"),
    ('{"cards": ["4", "3", "2", "10"], "formula": "4*3+2+10"}', CARDS, 5, "Correct solution"),
    ('{"formula": "4*3+2+10",}', CARDS, 5, None),
    ("{'formula': '4*3+2+10'}", CARDS, 5, None),
    ('```json\n{"formula": "4*3+2+10"}\n```', CARDS, 5, None),
    (
        '<think>{"formula": "1"}</think>\n' + gp.render_response(["4", "3", "2", "K"], [4, 3, 2, 10], "4*3+2+10", 24),
        CARDS,
        5,
        None,
    ),
    ('{"answer": {"formula": "4*3+2+10"}}', CARDS, 5, None),
    ('{"formula": 24}', CARDS, -3, "no formula found"),
    ('{"formula": null}', CARDS, -3, "no formula found"),
    ('{"formula": ["4*3+2+10"]}', CARDS, -3, "no formula found"),
    ('{"formula": {}}', CARDS, -3, "no formula found"),
    ('{"formula": "4*3*2*10"} then {"formula": "4*3+2+10"}', CARDS, 5, None),
    ('{"formula": "4*3+2+10"} then {"formula": "4*3*2*10"}', CARDS, -1, "4*3 is partially correct"),
    ('{"formula": "4*3+2+10"} then {"formula": null}', CARDS, -3, "no formula found"),
    (answer("4 * 3 + 2 + 10"), CARDS, 5, None),
    (answer("4×3+2+10"), CARDS, 5, None),
    (answer("4∗3+2+10"), CARDS, 5, None),
    (answer("10+2+4·3"), CARDS, 5, None),
    (answer("4*3+2+10=24"), CARDS, 5, None),
    (answer("24=4*3+2+10"), CARDS, 5, None),
    (answer("4*3+2+10=24=24"), CARDS, -3, "illegal characters"),
    (answer("4**3+2+10"), CARDS, -3, "invalid sequence after operator"),
    (answer("4//3+2+10"), CARDS, -3, "invalid sequence after operator"),
    (answer("-4+3*2*10"), CARDS, -3, "invalid sequence after operator"),
    # the ")" is rejected, so it does not close the "(" (the authors' check order): two violations
    (answer("4*3+2+10+()"), CARDS, -6, "invalid sequence after ')', unmatched opening parenthesis."),
    (answer("4*3+2+10+"), CARDS, -3, "incomplete formula"),
    (answer("4%3+2+10"), CARDS, -3, "illegal characters"),
    (answer("4^3+2+10"), CARDS, -3, "illegal characters"),
    (answer("4.0*3+2+10"), CARDS, -3, "illegal characters"),
    (answer("x=4*3+2+10"), CARDS, -3, "illegal characters"),
    (answer("(4*3)+(2+10"), CARDS, -3, "unmatched opening parenthesis"),
    (answer("8/(3-8/3)"), EIGHTS, 5, None),
    (answer("(8/(3-8/3))"), EIGHTS, 5, None),
    (answer("8/(3-3)+8"), EIGHTS, -3, "division by zero"),
    (answer("04*3+2+10"), CARDS, -3, "invalid number 04"),
    (answer("13+3+2*4"), {"values": [10, 3, 2, 4], "target": 24}, -4, "you used invalid numbers: [13]"),
    (answer("10+3+2*4"), {"values": [13, 3, 2, 4], "target": 24}, -4, "you used invalid numbers: [10]"),
    (answer("__import__('os').system('id')"), CARDS, None, "illegal characters"),
    (answer("eval('4*3+2+10')"), CARDS, None, "illegal characters"),
    (answer("9**9**9**9"), CARDS, None, "invalid sequence after operator"),
    (answer("1+" * 20_000 + "1"), CARDS, -3, "formula too long"),
    # a formula longer than the 64 KB completion cap loses its key with the head (the cap keeps the tail)
    (answer("1+" * 50_000 + "1"), CARDS, -3, "no formula found"),
    (answer("(" * 10_000 + "4*3+2+10" + ")" * 10_000), CARDS, -3, "formula too long"),
    (answer("+".join(["1"] * 40)), CARDS, -3, "formula too long"),
    ("x" * MB, CARDS, -3, "no formula found"),
    ("{" * MB, CARDS, -3, "no formula found"),
    ('{"formula": "' * (MB // 13), CARDS, -3, "no formula found"),
    (answer("4+" * (MB // 2)), CARDS, -3, None),
    ("x" * MB + answer("4*3+2+10"), CARDS, 5, None),
    ("{" * (MB // 2) + answer("4*3+2+10"), CARDS, 5, None),
    ('{"cards": [' + "{}," * 20_000 + '1], "formula": "4*3+2+10"}', CARDS, 5, None),
    ("\x00\x00" + answer("4*3+2+10"), CARDS, 5, None),
    (answer("4*3+2+10\x00"), CARDS, -3, "illegal characters"),
    ("\ud800" + answer("4*3+2+10"), CARDS, 5, None),
    (answer("4*3+2+10\udfff"), CARDS, -3, "illegal characters"),
    (answer("\u200f4*3+2+10\u200e"), CARDS, 5, None),
    (answer("\u202e4*3+2+10"), CARDS, 5, None),
    (answer("４*３+２+１０"), CARDS, 5, None),
    (answer("４＊３＋２＋１０"), CARDS, 5, None),
    (answer("٤*3+2+10"), CARDS, -3, "illegal characters"),
]


@pytest.mark.parametrize("completion,row,reward,info", HOSTILE, ids=[f"h{i}" for i in range(len(HOSTILE))])
def test_hostile_completions(robust, completion, row, reward, info):
    start = time.perf_counter()
    score = robust.score(completion, row)
    elapsed = time.perf_counter() - start
    assert isinstance(score.reward, float)
    assert score.info["category"] != "ERROR", score.info
    if reward is None:
        assert score.reward <= -3
    else:
        assert score.reward == reward, score.info
    if info is not None:
        assert score.info["verify_info"].startswith(info), score.info
    assert score.success == (score.reward == 5)
    # the budget is 10 ms; the bound is loose so a busy CI machine does not flake
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms"


def test_hostile_budget_typical(robust):
    """Median over the hostile table stays well inside the 10 ms budget."""
    robust.score(answer("4*3*2*10"), CARDS)  # solution cache warm, as in training
    times = []
    for completion, row, *_ in HOSTILE:
        start = time.perf_counter()
        robust.score(completion, row)
        times.append(time.perf_counter() - start)
    times.sort()
    assert times[len(times) // 2] < 0.01


def test_robust_never_evaluates_model_text(robust, monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    for completion, row, *_ in HOSTILE:
        robust.score(completion, row)
    assert robust.score(answer("8/(3-8/3)"), EIGHTS).success


def test_robust_partial_is_unreachable_and_wrong_values_cost(robust):
    score = robust.score(answer("(4*3)+(2+10"), CARDS)
    assert score.reward == -3 and not score.success
    score = robust.score(answer("(4+3)*2*10"), CARDS)
    assert score.reward == -1 and score.info["category"] == "NO_SOLUTION" and score.info["value"] == "140"
    assert score.feedback == (
        "You failed this trial because (4+3)*2 is partially correct but the full formula does not match any solution."
    )


def test_score_info_fields(robust):
    score = robust.score(answer("4 × 3 + 2 + 10 = 24"), CARDS)
    assert score.success and score.feedback == ""
    assert score.info == {
        "category": "CORRECT_SOLUTION",
        "verify_info": "Correct solution.",
        "formula": "4*3+2+10",
        "value": "24",
        "parse_ok": True,
    }
    missing = robust.score("no answer", CARDS)
    assert missing.info["parse_ok"] is False and missing.info["formula"] is None
    assert missing.feedback == "You failed this trial because no formula found."


def test_feedback_detail():
    env = make("generalpoints", feedback_detail=True)
    score = env.score(answer("(4+3)*2*10"), CARDS)
    assert score.reward == -1
    assert score.info["verify_info"].endswith("your formula evaluates to 140, not 24.")
    score = env.score(answer("10/3+4+2"), CARDS)
    assert "your formula evaluates to 28/3, not 24." in score.info["verify_info"]
    assert env.score(answer("4*3+2+10"), CARDS).feedback == ""


def test_partial_is_never_success(compat):
    score = compat.score(answer("(4*3)+(2+10"), CARDS)
    assert score.reward == 1.0 and not score.success
    assert not compat.is_success(score.reward)
    assert score.feedback == "You failed this trial because partial solution."
    assert compat.is_success(5.0) and compat.success_value == 5.0


def test_binary_mode():
    env = make("generalpoints", reward_mode="binary")
    assert env.success_value == 1.0
    good = env.score(answer("4*3+2+10"), CARDS)
    assert good.reward == 1.0 and good.success and env.is_success(good.reward)
    for bad in (answer("4*3*2*10"), answer("4*3+2+5"), "nothing", answer("(4*3)+(2+10")):
        score = env.score(bad, CARDS)
        assert score.reward == 0.0 and not score.success and not env.is_success(score.reward)
    compat_binary = make("generalpoints", reward_mode="binary", strict_original=True)
    assert compat_binary.score(answer("(4*3)+(2+10"), CARDS).reward == 0.0


def test_score_accepts_dataset_rows_and_chat_completions(robust):
    row = make("generalpoints", eval_size=1).dataset("id")[0]  # values as lists, from a datasets.Dataset
    formula = gp.solve(row["values"])[0]
    assert robust.score(answer(formula), row).success
    assert robust.score([{"role": "assistant", "content": answer(formula)}], row).success
    assert robust.score(None, row).reward == -3


def test_score_never_raises_on_bad_rows(robust):
    score = robust.score(answer("4*3+2+10"), {"target": 24})
    assert score.reward == -3 and not score.success
    assert score.info["category"] == "ERROR" and "values" in score.info["error"]
    assert make("generalpoints", reward_mode="binary").score("x", {}).reward == 0.0


# -- datasets and splits ---------------------------------------------------------------------------------------------


def test_dataset_is_deterministic():
    a = make("generalpoints", train_size=40, eval_size=8)
    b = make("generalpoints", train_size=40, eval_size=8)
    for split in ("train", "id", "ood"):
        assert a.dataset(split)[:] == b.dataset(split)[:]
    assert len(a.dataset("train")) == 40 and len(a.dataset("id")) == 8
    other = make("generalpoints", train_size=40, seed=1)
    assert other.dataset("train")["card_ids"] != a.dataset("train")["card_ids"]
    assert a.dataset("train")["rule"] == ["face10"] * 40
    ood_train = make("generalpoints", train_size=10, face_rule="face_ood").dataset("train")
    assert all(max(v) >= 11 for v in ood_train["values"])


def test_heldout_split():
    held = gp.heldout_multisets(24, 4)
    assert 90 <= len(held) <= 140  # about 113 of the 566 ID multisets
    held_keys = {gp.heldout_key(24, "face10", ms) for ms in held}
    env = make("generalpoints", split="heldout_multisets", train_size=400, eval_size=10)
    train = env.dataset("train")
    assert len(train) == 400
    assert not held_keys & set(train["split_key"])
    assert not any(gp.is_heldout(k) for k in train["split_key"])
    ids = env.dataset("id")
    assert sorted(ids["split_key"]) == sorted(held_keys)  # every held-out multiset exactly once
    assert sorted(tuple(sorted(v)) for v in ids["values"]) == sorted(held)
    face = [c for cards in ids["cards"] for c in cards if c in ("10", "J", "Q", "K")]
    assert {"10", "J", "Q", "K"} <= set(face)
    assert len(env.dataset("ood")) == 10
    assert gp.is_heldout("24|face10|2,3,4,10") == (
        int(hashlib.sha256(b"gp-v1|24|face10|2,3,4,10").hexdigest()[:8], 16) / 2**32 < 0.2
    )


def test_heldout_split_with_ood_training_rejects_nothing():
    # face_ood deals always hold a value above 10, so they never meet a held-out face10 multiset
    iid = make("generalpoints", face_rule="face_ood", train_size=30)
    held = make("generalpoints", face_rule="face_ood", train_size=30, split="heldout_multisets")
    assert iid.dataset("train")[:] == held.dataset("train")[:]


def test_iid_train_with_eval_seed_replays_eval_episodes():
    # the paper trained with seed 42 too, so its training stream starts with the ID eval episodes
    env = make("generalpoints", seed=42, train_size=5, eval_size=5)
    assert env.dataset("train")["card_ids"] == env.dataset("id")["card_ids"]


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="split"):
        make("generalpoints").dataset("validation")


# -- knobs -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "knob,value,words",
    [
        ("face_rule", "face11", "face_rule must be one of 'face10', 'face_ood'"),
        ("num_cards", 0, "num_cards must be an integer from 1 to 6"),
        ("num_cards", 7, "num_cards must be an integer from 1 to 6"),
        ("target", 0, "target must be an integer >= 1"),
        ("split", "paper", "split must be one of 'iid', 'heldout_multisets'"),
        ("reward_mode", "dense", "reward_mode must be one of 'paper', 'binary'"),
        ("strict_original", "yes", "strict_original must be true or false"),
        ("train_size", -1, "train_size must be an integer >= 0"),
    ],
)
def test_bad_knob_raises(knob, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        make("generalpoints", **{knob: value})


def test_unknown_knob_is_type_error():
    with pytest.raises(TypeError, match="nope"):
        make("generalpoints", nope=1)


def test_knobs_form_a_structured_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(gp.GeneralPoints)
    assert cfg.target == 24 and cfg.num_cards == 4 and cfg.split == "iid"
    assert make("generalpoints").eval_splits() == ["id", "ood"]


def test_impossible_target_raises_clearly():
    env = make("generalpoints", num_cards=1, target=50, eval_size=1)
    with pytest.raises(ValueError, match="no solvable deal"):
        env.dataset("id")


def test_exact_value_of_fractions():
    assert gp._exact_value(["8", "/", "(", "3", "-", "8", "/", "3", ")"]) == Fraction(24)


def test_short_prompt_states_the_same_facts_and_scores_the_same():
    paper = make("generalpoints", num_cards=3, target=12)
    short = make("generalpoints", num_cards=3, target=12, prompt_style="short")
    for split, rule_text in (("id", "J, Q, K count as 10."), ("ood", "J, Q, K count as 11, 12, 13.")):
        p_row, s_row = paper.dataset(split)[0], short.dataset(split)[0]
        text = s_row["prompt"][0]["content"]
        assert text == f"Cards: {s_row['cards']!r}\nMake 12 using each card once. {rule_text}\n"
        assert {k: v for k, v in p_row.items() if k != "prompt"} == {k: v for k, v in s_row.items() if k != "prompt"}
        demo = short.demonstrations(split)[0]["messages"][1]["content"]
        assert short.score(demo, s_row).success and paper.score(demo, p_row).success
    with pytest.raises(ValueError, match="prompt_style"):
        make("generalpoints", prompt_style="long")
