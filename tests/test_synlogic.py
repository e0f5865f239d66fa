"""env=synlogic: generators, verifiers, reward rule, knobs, hostile input and the hub mapper."""

import itertools
import json
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from rlexp import envs
from rlexp.envs import synlogic
from rlexp.envs.base import Score
from rlexp.envs.synlogic import families as T
from rlexp.envs.synlogic import hub
from rlexp.envs.synlogic.cryptarithm import crypt_solutions
from rlexp.envs.synlogic.latin import latin_search
from rlexp.errors import ConfigError

FAMILIES = T.FAMILIES
DIFFICULTIES = (1, 4, 7, 10)
SEEDS = (0, 1, 2)


def wrap(answer: str) -> str:
    return f"<think>Let me work it out.</think>\n<answer>{answer}</answer>"


def row_for(family: str, puzzle: dict, reference: str = "", difficulty: int = 1) -> dict:
    return {
        "task": family,
        "difficulty": difficulty,
        "puzzle": json.dumps(puzzle),
        "reference": reference,
        "prompt": [{"role": "user", "content": T.render_prompt(family, puzzle)}],
    }


@pytest.fixture(scope="module")
def env():
    return envs.make("synlogic", train_size=16, eval_size=16)


@pytest.fixture(scope="module")
def generated():
    """(family, difficulty, seed) -> Task, made once."""
    return {(f, d, s): T.generate(f, s, d) for f in FAMILIES for d in DIFFICULTIES for s in SEEDS}


# -- generators ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_reference_answers_score_one(env, generated, family):
    for d, s in itertools.product(DIFFICULTIES, SEEDS):
        task = generated[family, d, s]
        row = row_for(family, task.puzzle, task.reference, d)
        score = env.score(wrap(task.reference), row)
        assert score == Score(1.0, True, "", score.info), (family, d, s, score)
        assert score.info["category"] == "correct" and score.info["format_ok"] is True
        assert score.info["task"] == family and score.info["difficulty"] == d
        prompt = row["prompt"][0]["content"]
        assert "<answer>" in prompt and "<think>" in prompt


@pytest.mark.parametrize("family", FAMILIES)
def test_generators_are_pure_functions_of_seed_and_difficulty(generated, family):
    for d, s in itertools.product(DIFFICULTIES, SEEDS):
        again = T.generate(family, s, d)
        assert again == generated[family, d, s]
    puzzles = {json.dumps(generated[family, 10, s].puzzle, sort_keys=True) for s in SEEDS}
    assert len(puzzles) == len(SEEDS)  # different seeds, different puzzles


def test_generation_does_not_depend_on_the_hash_seed(generated):
    """Another interpreter with another PYTHONHASHSEED makes the same puzzles (no hash() of strings, no set order)."""
    code = (
        "import json; from rlexp.envs.synlogic import families as T\n"
        "print(json.dumps([[f, d, s, T.generate(f, s, d)] for f in T.FAMILIES for d in (1, 10) for s in (0, 1)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        cwd=str(envs.__file__).rsplit("/rlexp/", 1)[0],
    )
    assert out.returncode == 0, out.stderr
    for f, d, s, (puzzle, reference) in json.loads(out.stdout):
        here = generated[f, d, s] if d in DIFFICULTIES and s in SEEDS else T.generate(f, s, d)
        assert json.loads(json.dumps(here.puzzle)) == puzzle and here.reference == reference


def test_difficulty_maps_to_the_documented_knobs(generated):
    assert T.generate("sudoku", 0, 1).puzzle["size"] == 4 and generated["sudoku", 10, 0].puzzle["size"] == 9
    blanks = sum(v == 0 for row in generated["sudoku", 10, 0].puzzle["grid"] for v in row)
    assert blanks == T.level("sudoku", 10)[1]
    assert len(generated["game_of_24", 1, 0].puzzle["numbers"]) == 4 and generated["game_of_24", 1, 0].puzzle["target"] == 24
    assert len(generated["game_of_24", 10, 0].puzzle["numbers"]) == 6
    assert generated["futoshiki", 10, 0].puzzle["size"] == 6 and generated["futoshiki", 1, 0].puzzle["size"] == 4
    assert generated["survo", 10, 1].puzzle["size"] == 8
    assert len(generated["survo", 10, 1].puzzle["candidates"]) == 14
    n_types, total, fill = T.level("dyck_language", 7)
    task = generated["dyck_language", 7, 0]
    assert len(task.reference) == total and len(task.reference) - len(task.puzzle["prefix"]) == fill
    assert len(generated["boolean_expressions", 10, 0].puzzle["options"]) == 6
    letters = set("".join(generated["cryptarithm", 10, 0].puzzle["words"]) + generated["cryptarithm", 10, 0].puzzle["result"])
    assert len(letters) == T.level("cryptarithm", 10)[0]
    for family in FAMILIES:
        assert len(T.LEVELS[family]) == 10


def test_each_family_is_one_module_with_the_whole_interface():
    for name, module in T.MODULES.items():
        assert module.__name__ == f"rlexp.envs.synlogic.{name}"
        for attr in ("LEVELS", "THINK", "generate", "prompt", "verify", "from_hub"):
            assert hasattr(module, attr), (name, attr)


def test_generate_refuses_unknown_families_and_difficulties():
    with pytest.raises(ValueError, match="unknown task family"):
        T.generate("chess", 0, 1)
    for bad in (0, 11, "3", 2.0, True):
        with pytest.raises(ValueError, match="difficulty must be an integer from 1 to 10"):
            T.generate("sudoku", 0, bad)


def test_generators_are_fast():
    start = time.perf_counter()
    for family in FAMILIES:
        for s in range(3):
            T.generate(family, 100 + s, 10)
    assert time.perf_counter() - start < 5.0


# -- uniqueness (cryptarithm, sudoku, futoshiki) ------------------------------------------------------


def _naive_latin(grid, n, box=None, less=()):
    """Every completion by plain backtracking (independent of the solver under test)."""
    cells = [(i, j) for i in range(n) for j in range(n) if not grid[i][j]]
    g = [row[:] for row in grid]
    out = []

    def ok(i, j, v):
        if v in g[i] or any(g[r][j] == v for r in range(n)):
            return False
        if box:
            r0, c0 = i // box[0] * box[0], j // box[1] * box[1]
            if any(g[r][c] == v for r in range(r0, r0 + box[0]) for c in range(c0, c0 + box[1])):
                return False
        return True

    def rec(k):
        if k == len(cells):
            if all(g[a][b] < g[c][d] for (a, b), (c, d) in less):
                out.append([row[:] for row in g])
            return
        i, j = cells[k]
        for v in range(1, n + 1):
            if ok(i, j, v):
                g[i][j] = v
                rec(k + 1)
                g[i][j] = 0

    rec(0)
    return out


@pytest.mark.parametrize("d", range(1, 11))
def test_sudoku_and_futoshiki_have_unique_solutions(generated, d):
    for s in SEEDS:
        for family in ("sudoku", "futoshiki"):
            task = generated.get((family, d, s)) or T.generate(family, s, d)
            p = task.puzzle
            n = p["size"]
            flat = [v for row in p["grid"] for v in row]
            box = tuple(p["box"]) if family == "sudoku" else None
            pairs = ()
            if family == "futoshiki":
                pairs = tuple(
                    (r1 * n + c1, r2 * n + c2) if op == "<" else (r2 * n + c2, r1 * n + c1)
                    for r1, c1, r2, c2, op in p["constraints"]
                )
            found = latin_search(flat, n, box, constraints=pairs, limit=2, budget=10**7)
            assert found is not None and len(found) == 1, (family, d, s)
            assert json.dumps([found[0][i * n : (i + 1) * n] for i in range(n)]) == task.reference


def test_latin_solver_agrees_with_naive_backtracking():
    for s in range(6):
        for family, d in (("sudoku", 3), ("futoshiki", 2)):
            p = T.generate(family, s, d).puzzle
            n = p["size"]
            less = [
                ((r1, c1), (r2, c2)) if op == "<" else ((r2, c2), (r1, c1)) for r1, c1, r2, c2, op in p.get("constraints", [])
            ]
            assert len(_naive_latin(p["grid"], n, tuple(p["box"]) if "box" in p else None, less)) == 1
    # an empty 4x4 sudoku has 288 solutions; the solver counts them all when asked
    assert len(latin_search([0] * 16, 4, (2, 2), limit=1000)) == 288 == len(_naive_latin([[0] * 4 for _ in range(4)], 4, (2, 2)))


def _brute_crypt(words, ops, result):
    letters = list(dict.fromkeys("".join(words) + result))
    lead = {w[0] for w in words + [result] if len(w) > 1}
    count = 0
    for perm in itertools.permutations(range(10), len(letters)):
        m = dict(zip(letters, perm))
        if any(m[x] == 0 for x in lead):
            continue
        values = [int("".join(str(m[c]) for c in w)) for w in words]
        total = values[0] + sum(v if op == "+" else -v for op, v in zip(ops, values[1:]))
        count += total == int("".join(str(m[c]) for c in result))
    return count


def test_cryptarithms_have_unique_solutions(generated):
    for d in range(1, 11):
        for s in SEEDS:
            p = (generated.get(("cryptarithm", d, s)) or T.generate("cryptarithm", s, d)).puzzle
            assert len(crypt_solutions(p["words"], p["operators"], p["result"], limit=5)) == 1, (d, s)
    # the column solver agrees with brute force on small puzzles (unique or not)
    assert crypt_solutions(["SEND", "MORE"], ["+"], "MONEY", limit=5) == [dict(S=9, E=5, N=6, D=7, M=1, O=0, R=8, Y=2)]
    for words, ops, result in (
        (["AB", "BA"], ["+"], "CC"),
        (["ABC", "AB"], ["-"], "CA"),
        (["A", "B"], ["+"], "C"),
        (["AB", "CB", "A"], ["+", "-"], "DC"),
    ):
        assert len(crypt_solutions(words, ops, result, limit=10**6)) == _brute_crypt(words, ops, result)
    for d in (1, 2):
        p = T.generate("cryptarithm", 5, d).puzzle
        assert _brute_crypt(p["words"], p["operators"], p["result"]) == 1


# -- verifiers: hand-made wrong answers give 0 and the expected reason ------------------------------------------

G24 = {"numbers": [1, 2, 3, 4], "target": 24, "operators": "+-*/"}
SEND = {"words": ["SEND", "MORE"], "operators": ["+"], "result": "MONEY"}
SOLVED4 = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
SUDOKU4 = {"size": 4, "box": [2, 2], "grid": [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]}
FUTO4 = {
    "size": 4,
    "grid": [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    "constraints": [[0, 1, 0, 2, "<"], [1, 0, 2, 0, ">"]],
}
KUKU = {"rows": 2, "cols": 3, "row_sums": [4, 2], "col_sums": [1, 2, 1]}
SURVO = {"size": 3, "grid": [[0, 2, 3], [4, 0, 9], [5, 7, 12]], "candidates": [1, 5]}
DYCK = {"prefix": "([{", "n_types": 3}
BOOL = {"labels": ["A", "B", "C", "D"], "options": ["True", "False", "not False", "True and False"], "true_labels": ["A", "C"]}

CASES = [
    # family, puzzle, answer, reward, category, reason (regex)
    ("game_of_24", G24, "1*2*3*4", 1, "correct", "^$"),
    ("game_of_24", G24, "(1 + 2 + 3) * 4 = 24", 1, "correct", "^$"),
    ("game_of_24", G24, "24 = 4 × 3 × 2 × 1", 1, "correct", "^$"),
    ("game_of_24", G24, "４*３*２*１", 1, "correct", "^$"),
    ("game_of_24", G24, "1+2+3+4", 0, "wrong", "^expression evaluates to 10, not 24$"),
    ("game_of_24", G24, "4*3*(2+1)/1", 0, "wrong", "^you did not use|^you used"),
    ("game_of_24", G24, "4*3*2*2", 0, "wrong", "^you used 2 twice$"),
    ("game_of_24", G24, "4*3*2", 0, "wrong", "^you did not use 1$"),
    ("game_of_24", G24, "4*3*2*1*5", 0, "wrong", "^5 is not one of the given numbers$"),
    ("game_of_24", G24, "(4+3+1)*3", 0, "wrong", "^you used 3 twice$"),
    ("game_of_24", {"numbers": [1, 1, 2, 3], "target": 24}, "3/(1-1)*2", 0, "wrong", "^expression divides by zero$"),
    ("game_of_24", G24, "4*3*2/1 = 25", 0, "malformed", "must be 24"),
    ("game_of_24", G24, "4**3", 0, "malformed", "^expression is not well formed$"),
    ("game_of_24", G24, "(4*3*2*1", 0, "malformed", "^expression is not well formed$"),
    ("game_of_24", G24, "-4+3*2*1", 0, "malformed", "^expression is not well formed$"),
    ("game_of_24", G24, "4.0*3*2*1", 0, "malformed", "contains '.'"),
    ("game_of_24", G24, "04*3*2*1", 0, "malformed", "^invalid number 04$"),
    ("cryptarithm", SEND, "9567 + 1085 = 10652", 1, "correct", "^$"),
    ("cryptarithm", SEND, '{"S": 9, "E": 5, "N": 6, "D": 7, "M": 1, "O": 0, "R": 8, "Y": 2}', 1, "correct", "^$"),
    ("cryptarithm", SEND, "S=9, E=5, N=6, D=7, M=1, O=0, R=8, Y=2", 1, "correct", "^$"),
    (
        "cryptarithm",
        SEND,
        "9567 + 1085 = 10653",
        0,
        "wrong",
        "^the equation does not hold: the left side is 10652, the right side is 10653$",
    ),
    ("cryptarithm", SEND, "9567 + 1085 = 10642", 0, "wrong", "^letter E stands for both 5 and 4$"),
    ("cryptarithm", SEND, "9567 - 1085 = 10652", 0, "malformed", "should have \\+ where it has -"),
    ("cryptarithm", SEND, "9567 + 1085", 0, "malformed", "has 2 numbers"),
    ("cryptarithm", SEND, "956 + 1085 = 10652", 0, "wrong", "^number 1 has 3 digits, but SEND has 4 letters$"),
    (
        "cryptarithm",
        SEND,
        '{"S": 9, "E": 9, "N": 6, "D": 7, "M": 1, "O": 0, "R": 8, "Y": 2}',
        0,
        "wrong",
        "^letters S and E both stand for 9$",
    ),
    ("cryptarithm", SEND, '{"S": 9, "E": 5, "N": 6, "D": 7, "M": 1, "O": 0, "R": 8}', 0, "wrong", "^letter Y has no digit$"),
    (
        "cryptarithm",
        SEND,
        '{"S": 9, "E": 5, "N": 6, "D": 7, "M": 0, "O": 1, "R": 8, "Y": 2}',
        0,
        "wrong",
        "^MORE would start with 0$",
    ),
    ("cryptarithm", SEND, "S=9, E=5, Q=1", 0, "malformed", "^Q is not a letter of the puzzle$"),
    ("cryptarithm", SEND, '{"S": "nine"}', 0, "malformed", "not a digit"),
    ("sudoku", SUDOKU4, json.dumps(SOLVED4), 1, "correct", "^$"),
    ("sudoku", SUDOKU4, "1 2 3 4\n3 4 1 2\n2 1 4 3\n4 3 2 1", 1, "correct", "^$"),
    ("sudoku", SUDOKU4, "((1,2,3,4),(3,4,1,2),(2,1,4,3),(4,3,2,1))", 1, "correct", "^$"),
    ("sudoku", SUDOKU4, json.dumps(SOLVED4[:3]), 0, "malformed", "^answer grid has 3 rows, expected 4$"),
    ("sudoku", SUDOKU4, json.dumps(SOLVED4[:3] + [[4, 3, 2]]), 0, "malformed", "^row 4 has 3 cells, expected 4$"),
    (
        "sudoku",
        SUDOKU4,
        '[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, "1"]]',
        0,
        "malformed",
        r"^cell \(4,4\) is not an integer$",
    ),
    (
        "sudoku",
        SUDOKU4,
        "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1.0]]",
        0,
        "malformed",
        r"^cell \(4,4\) is not an integer$",
    ),
    (
        "sudoku",
        SUDOKU4,
        "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, true]]",
        0,
        "malformed",
        r"^cell \(4,4\) is not an integer$",
    ),
    (
        "sudoku",
        SUDOKU4,
        "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, [1]]]",
        0,
        "malformed",
        r"^cell \(4,4\) is not an integer$",
    ),
    ("sudoku", SUDOKU4, '{"grid": 1}', 0, "malformed", "^answer is not a list of rows$"),
    ("sudoku", SUDOKU4, "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], 7]", 0, "malformed", "^row 4 is not a list$"),
    (
        "sudoku",
        SUDOKU4,
        "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 5]]",
        0,
        "wrong",
        r"^cell \(4,4\) holds 5, not a number from 1 to 4$",
    ),
    (
        "sudoku",
        SUDOKU4,
        json.dumps([[2, 1, 3, 4], [3, 4, 1, 2], [1, 2, 4, 3], [4, 3, 2, 1]]),
        0,
        "wrong",
        r"^given cell \(1,1\) was changed$",
    ),
    (
        "sudoku",
        SUDOKU4,
        json.dumps([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [2, 1, 4, 3]]),
        0,
        "wrong",
        "^column 1 has duplicate 2$",
    ),
    (
        "sudoku",
        SUDOKU4,
        json.dumps([[1, 2, 3, 4], [2, 1, 4, 3], [3, 4, 1, 2], [4, 3, 2, 1]]),
        0,
        "wrong",
        "^box 1 has duplicate 1$",
    ),
    (
        "sudoku",
        SUDOKU4,
        json.dumps([[1, 1, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]),
        0,
        "wrong",
        "^row 1 has duplicate 1$",
    ),
    ("futoshiki", FUTO4, json.dumps(SOLVED4), 1, "correct", "^$"),
    (
        "futoshiki",
        FUTO4,
        json.dumps([[1, 3, 2, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 2, 3, 1]]),
        0,
        "wrong",
        r"^constraint \(1,2\) < \(1,3\) violated$",
    ),
    (
        "futoshiki",
        FUTO4,
        json.dumps([[1, 2, 3, 4], [2, 1, 4, 3], [3, 4, 1, 2], [4, 3, 2, 1]]),
        0,
        "wrong",
        r"^constraint \(2,1\) > \(3,1\) violated$",
    ),
    (
        "futoshiki",
        FUTO4,
        json.dumps([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 2]]),
        0,
        "wrong",
        "^row 4 has duplicate 2$",
    ),
    (
        "futoshiki",
        FUTO4,
        json.dumps([[1, 2, 3], [3, 4, 1], [2, 1, 4], [4, 3, 2]]),
        0,
        "malformed",
        "^row 1 has 3 cells, expected 4$",
    ),
    ("kukurasu", KUKU, "[[1, 0, 1], [0, 1, 0]]", 1, "correct", "^$"),
    ("kukurasu", KUKU, '[["1", "X", "1"], ["X", "1", "X"]]', 1, "correct", "^$"),
    ("kukurasu", KUKU, "[[1, 1, 0], [0, 1, 0]]", 0, "wrong", "^row 1 adds up to 3, expected 4$"),
    ("kukurasu", KUKU, "[[1, 0, 1], [1, 0, 0]]", 0, "wrong", "^row 2 adds up to 1, expected 2$"),
    ("kukurasu", KUKU, "[[1, 0, 1], [0, 2, 0]]", 0, "malformed", r"^cell \(2,2\) is not 0 or 1$"),
    ("kukurasu", KUKU, "[[1, 0, 1]]", 0, "malformed", "^answer grid has 1 rows, expected 2$"),
    ("survo", SURVO, "[[1, 2, 3], [4, 5, 9], [5, 7, 12]]", 1, "correct", "^$"),
    ("survo", SURVO, "[[5, 2, 3], [4, 1, 9], [5, 7, 12]]", 0, "wrong", "^row 1 adds up to 7, not 3$"),
    ("survo", SURVO, "[[1, 2, 3], [4, 1, 9], [5, 7, 12]]", 0, "wrong", "^you used 1 twice, but it is a candidate once$"),
    ("survo", SURVO, "[[1, 2, 3], [4, 6, 9], [5, 7, 12]]", 0, "wrong", "^6 is not a candidate number$"),
    ("survo", SURVO, "[[1, 2, 3], [4, 5, 10], [5, 7, 12]]", 0, "wrong", r"^given cell \(2,3\) was changed$"),
    ("dyck_language", DYCK, "([{}])", 1, "correct", "^$"),
    ("dyck_language", DYCK, "}])", 1, "correct", "^$"),
    ("dyck_language", DYCK, "( [ { } ] )", 1, "correct", "^$"),
    ("dyck_language", DYCK, "（［｛｝］）", 1, "correct", "^$"),
    ("dyck_language", DYCK, "([{}]", 0, "wrong", "^the sequence leaves 1 bracket open$"),
    ("dyck_language", DYCK, "([{])", 0, "wrong", "^closing bracket 4 does not match its opening bracket$"),
    ("dyck_language", DYCK, "([{}]))", 0, "wrong", "^closing bracket 7 has nothing to close$"),
    ("dyck_language", DYCK, "([{}])()", 0, "wrong", "^the completion is not the shortest: it adds 2 more brackets than needed$"),
    ("dyck_language", DYCK, "(({}))", 0, "wrong", "^the answer does not start with the given sequence$"),
    ("dyck_language", DYCK, "([{x}])", 0, "malformed", "^answer contains characters other than brackets$"),
    ("boolean_expressions", BOOL, "A,C", 1, "correct", "^$"),
    ("boolean_expressions", BOOL, "c, a", 1, "correct", "^$"),
    ("boolean_expressions", BOOL, "Ａ,Ｃ", 1, "correct", "^$"),
    ("boolean_expressions", BOOL, "A", 0, "wrong", "^1 label is wrong$"),
    ("boolean_expressions", BOOL, "B,D", 0, "wrong", "^4 labels are wrong$"),
    ("boolean_expressions", BOOL, "A,C,Z", 0, "malformed", "^Z is not an option label$"),
    ("boolean_expressions", BOOL, "   ", 0, "malformed", "."),
]


@pytest.mark.parametrize("family, puzzle, answer, reward, category, reason", CASES)
def test_hand_made_answers(env, family, puzzle, answer, reward, category, reason):
    score = env.score(wrap(answer), row_for(family, puzzle))
    assert score.reward == reward and score.success == bool(reward)
    assert score.info["category"] == category
    assert re.search(reason, score.feedback), score.feedback
    assert score.feedback == score.info["reason"]


def test_feedback_never_shows_the_solution(env, generated):
    for (family, d, s), task in generated.items():
        if s:
            continue
        row = row_for(family, task.puzzle, task.reference, d)
        ref = task.reference
        attempts = ["", "0", "[[0]]", "A", "1,2", "()", ref[:-1], ref[1:], ref + "1", ref[::-1], ref.replace("1", "2")]
        if ref.startswith("[["):  # one cell changed, one row dropped
            grid = json.loads(ref)
            grid[-1][-1] = grid[-1][-1] % 9 + 1
            attempts += [json.dumps(grid), json.dumps(grid[:-1])]
        for attempt in attempts:
            score = env.score(wrap(attempt), row)
            if score.success:
                continue
            fb = score.feedback
            assert fb and len(fb) < 200 and "\n" not in fb
            if family == "boolean_expressions":
                assert not re.search(r"\b[A-H]\b", fb), fb  # count-level only
            elif family != "dyck_language" or len(ref) > 3:
                assert ref not in fb and ref.replace(" ", "") not in fb.replace(" ", ""), (family, fb)


# -- reward rule (SynLogic's: layout and answer) -------------------------------------------------------------------------------------


def test_format_rule_and_reward_modes():
    row = row_for("boolean_expressions", BOOL)
    syn = envs.make("synlogic")
    acc = envs.make("synlogic", reward_mode="accuracy")
    think = envs.make("synlogic", require_think=True)
    cases = {
        "<think>a\nb</think>\n<answer>A,C</answer>": (1, 1, 1),
        "<answer>A,C</answer>": (1, 1, 0),
        "  <answer>\nA,C\n</answer>\n": (1, 1, 0),
        "reasoning that the template opened</think><answer>A,C</answer>": (1, 1, 1),
        "<think>x</think><answer>B</answer><answer>A,C</answer>": (1, 1, 1),  # the last answer counts
        "<think>x</think><answer>A,C</answer><answer>B</answer>": (0, 0, 0),
        "<think>x</think><answer>A,C</answer> trailing text": (0, 1, 0),
        "preamble <answer>A,C</answer>": (0, 1, 0),
        "<think><answer>A,C</answer></think>": (0, 0, 0),  # an answer inside <think> does not count
        "<think>x</think>\n\\boxed{A,C}": (0, 0, 0),
        "<think>x</think><answer>A,C": (0, 0, 0),
        "<think>x<answer>A,C</answer>": (0, 0, 0),  # unclosed think
    }
    for text, want in cases.items():
        got = tuple(e.score(text, row).reward for e in (syn, acc, think))
        assert got == want, (text, got)
    s = syn.score("preamble <answer>A,C</answer>", row)
    assert s.info["category"] == "format" and s.feedback.startswith("format error")
    s = syn.score("<think><answer>A,C</answer></think>", row)
    assert s.info["category"] == "format" and "inside <think>" in s.feedback
    assert syn.score("nothing", row).feedback == "no <answer> tag found"
    info = syn.score(wrap("A"), row).info
    assert set(info) >= {"task", "difficulty", "format_ok", "parsed", "reason", "category"}
    assert info["parsed"] == "A" and info["category"] == "wrong" and info["format_ok"] is True
    # chat-shaped completions are read from the last message
    assert syn.score([{"role": "assistant", "content": wrap("A,C")}], row).reward == 1.0
    assert syn.success_value == 1.0 and syn.is_success(1.0) and not syn.is_success(0.0)


def test_format_ok_matches_the_spec_regex():
    spec = re.compile(r"^\s*(<think>.*?</think>)?\s*<answer>.*?</answer>\s*$", re.DOTALL)
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "x", " ", "\n"]
    for n in range(1, 6):
        for combo in itertools.product(pieces, repeat=n):
            text = "".join(combo)
            if "<think>" not in text and "</think>" in text:
                continue  # the template-opened case is our extension
            assert synlogic.format_ok(text) == bool(spec.match(text)), text


def test_broken_rows_get_no_reward(env):
    for row in ({"task": "chess", "puzzle": "{}"}, {"task": "sudoku", "puzzle": "not json"}, {}):
        s = env.score(wrap("1"), row)
        assert s.reward is None and s.info["category"] == "bad_row"


# -- hostile and malformed completions --------------------------------------------------------------------------

MB = 1_000_000
HOSTILE = [
    "",
    "   \n\t  ",
    "x" * MB,
    wrap("x" * MB),
    wrap("9" * MB),
    "<answer>" * 100_000,
    "</think>" * 100_000 + "<answer>1</answer>",
    "<think>" + "<answer>" * 50_000,
    "<answer></answer>" * 50_000,
    wrap("[" * 1000 + "]" * 1000),
    wrap("(" * 1000 + ")" * 1000),
    wrap("{" * 1000 + "}" * 1000),
    wrap("[" * 100_000),
    wrap("10**10**10"),
    wrap("9**9**9**9"),
    wrap("2**2**2**2**2**2**2**2"),
    wrap("int('9'*10**6)"),
    wrap("__import__('os').system('touch PWNED') or 24"),
    wrap("().__class__.__bases__[0].__subclasses__()"),
    wrap("２４"),
    wrap("（１＋２）＊８"),
    wrap("٣ + ٤ * ٢ * ١"),
    wrap("答案是 24"),
    wrap("“A”, ‘C’"),
    wrap("［［1,2］,［3,4］］"),
    wrap("\x00"),
    wrap("1\x002\x003"),
    wrap("\ud800"),
    wrap("\udfff[[1]]\ud800"),
    wrap("[[1,2],[3]]"),
    wrap('[["a","b"],["c","d"]]'),
    wrap("[[1.5, 2.0], [3.0, 4.5]]"),
    wrap("[[[1, 2]], [[3, 4]]]"),
    wrap('{"rows": [[1]]}'),
    wrap('"just a string"'),
    wrap("null"),
    wrap("[]"),
    wrap("[[]]"),
    wrap("[NaN, Infinity, -Infinity]"),
    wrap("[[1e309, 1e309]]"),
    wrap("[[true, false], [false, true]]"),
    wrap("[1]," * 20_000),
    wrap("1e999999"),
    wrap("A" * 100_000),
    wrap(",,,,"),
    wrap("=" * 1000),
    wrap("SEND=MORE"),
    wrap("{" + '"A": 1, ' * 10_000 + "}"),
    wrap("A=" + "9" * 10_000),
    "\\boxed{24}",
    "<answer>24",
    "<ANSWER>24</ANSWER>",
    wrap("9567 + 1085 = " + "1" * 5000),
    wrap(" = 24"),
    wrap("24 = 24 = 24"),
    wrap("-" * 500),
]


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_completions_never_raise(env, generated, family):
    task = generated[family, 10, 0]
    row = row_for(family, task.puzzle, task.reference, 10)
    for text in HOSTILE + [None, 12345, [{"role": "assistant", "content": wrap("1")}], []]:
        start = time.perf_counter()
        score = env.score(text, row)
        elapsed = time.perf_counter() - start
        assert isinstance(score, Score) and score.reward == 0.0 and not score.success, (family, str(text)[:60])
        assert elapsed < 1.0, (family, str(text)[:60], elapsed)
        assert score.info["category"] in ("format", "malformed", "wrong"), score.info
        json.dumps(score.info, ensure_ascii=False).encode("utf-8")  # loggable: no lone surrogates
        score.feedback.encode("utf-8")
    ref = task.reference
    for text in (
        f"<think><answer>{ref}</answer></think>",
        f"<think>{ref}</think>",
        f"<think>x<answer>{ref}</answer>",
        f"<answer>{ref}</answer><answer>{ref}x</answer>",
        f"<answer>{ref}</answer>" + "<answer>" * 1000,
        f"<answer>{ref}",
    ):
        score = env.score(text, row)
        assert score.reward == 0.0 and score.info["category"] in ("format", "malformed", "wrong"), (family, text[:80])
    assert env.score(f"<answer>junk</answer>\n<answer>{ref}</answer>", row).reward == 1.0  # the last answer counts


@pytest.mark.parametrize("family", ["sudoku", "futoshiki", "kukurasu", "survo"])
def test_malformed_grids_are_named(env, generated, family):
    task = generated[family, 4, 0]
    row = row_for(family, task.puzzle, task.reference, 4)
    grid = json.loads(task.reference)
    rows, cols = len(grid), len(grid[0])
    bad = {
        json.dumps(grid[:-1]): f"answer grid has {rows - 1} rows, expected {rows}",
        json.dumps(grid[:-1] + [grid[-1][:-1]]): f"row {rows} has {cols - 1} cells, expected {cols}",
        json.dumps(grid + [grid[0]]): f"answer grid has {rows + 1} rows, expected {rows}",
        json.dumps([[str(v) + "x" for v in r] for r in grid]): "cell (1,1) is not",
        json.dumps([[v + 0.5 for v in r] for r in grid]): "cell (1,1) is not",
        json.dumps([[[v] for v in r] for r in grid]): "cell (1,1) is not",
        json.dumps({"grid": grid}): "answer is not a list of rows",
        "42": "answer is not a list of rows",
        "[[1, 2": "answer is not valid JSON",
        "[" * 9 + "]" * 9: "answer is nested too deeply",
    }
    for answer, reason in bad.items():
        score = env.score(wrap(answer), row)
        assert score.reward == 0.0 and score.info["category"] == "malformed" and score.feedback.startswith(reason), (
            answer,
            score.feedback,
        )


# -- the environment: knobs, splits, rows ---------------------------------------------------------------------


def test_rows_splits_and_columns(env):
    train, test = env.dataset("train"), env.dataset("test")
    assert len(train) == 16 and len(test) == 16
    assert set(train.column_names) >= {"prompt", "task", "difficulty", "seed", "puzzle", "reference", "source", "game_data_str"}
    assert [r["task"] for r in train][:8] == list(FAMILIES) and set(train["difficulty"]) == {3}
    assert not set(train["seed"]) & set(test["seed"])
    assert not {(r["task"], r["puzzle"]) for r in train} & {(r["task"], r["puzzle"]) for r in test}
    assert env.eval_splits() == ["test"] and type(env).group_columns == ("task",)
    for row in train:
        json.loads(row["puzzle"])
        assert row["prompt"][0]["role"] == "user" and row["source"] == "ours"
        assert env.score(wrap(row["reference"]), row).reward == 1.0
    with pytest.raises(ValueError, match="split"):
        env.dataset("validation")


def test_demonstrations_end_with_the_reference(env):
    demos = env.demonstrations("train")
    rows = env.dataset("train")
    assert len(demos) == len(rows)
    for demo, row in zip(demos, rows):
        user, assistant = demo["messages"]
        assert user == row["prompt"][0] and assistant["role"] == "assistant"
        assert re.fullmatch(r"<think>[^\n]+</think>\n<answer>.+</answer>", assistant["content"], re.DOTALL)
        assert assistant["content"].endswith(f"<answer>{row['reference']}</answer>")
        assert env.score(assistant["content"], row).reward == 1.0


def test_tasks_and_difficulty_knobs_change_the_data():
    only = envs.make("synlogic", tasks=["sudoku"], train_size=4, eval_size=0)
    assert set(only.dataset("train")["task"]) == {"sudoku"}
    two = envs.make("synlogic", tasks=["survo", "dyck_language"], train_size=4, eval_size=2)
    assert two.dataset("train")["task"] == ["survo", "dyck_language"] * 2
    easy = envs.make("synlogic", tasks=["sudoku"], difficulty=1, train_size=2, eval_size=0)
    hard = envs.make("synlogic", tasks=["sudoku"], difficulty=9, train_size=2, eval_size=0)
    assert json.loads(easy.dataset("train")[0]["puzzle"])["size"] == 4
    assert json.loads(hard.dataset("train")[0]["puzzle"])["size"] == 9
    assert set(hard.dataset("train")["difficulty"]) == {9}
    other_seed = envs.make("synlogic", tasks=["sudoku"], difficulty=9, train_size=2, eval_size=0, seed=1)
    assert other_seed.dataset("train")["puzzle"] != hard.dataset("train")["puzzle"]
    assert (
        envs.make("synlogic", tasks=["sudoku"], difficulty=9, train_size=2, eval_size=0).dataset("train")["puzzle"]
        == hard.dataset("train")["puzzle"]
    )


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"tasks": ["chess"]}, "tasks has unknown families"),
        ({"tasks": "sudoku"}, "tasks must be a list"),
        ({"tasks": ["sudoku", "sudoku"]}, "twice"),
        ({"difficulty": 0}, "difficulty must be an integer from 1 to 10"),
        ({"difficulty": 11}, "difficulty must be an integer from 1 to 10"),
        ({"difficulty": "3"}, "difficulty must be an integer from 1 to 10"),
        ({"difficulty": True}, "difficulty must be an integer from 1 to 10"),
        ({"source": "web"}, "source must be one of procedural, hub"),
        ({"subset": "medium"}, "subset must be one of easy, hard"),
        ({"reward_mode": "partial"}, "reward_mode must be one of synlogic, accuracy"),
        ({"require_think": "yes"}, "require_think must be true or false"),
        ({"train_size": -1}, "train_size must be an integer >= 0"),
        ({"eval_size": 2.5}, "eval_size must be an integer >= 0"),
        ({"seed": None}, "seed must be an integer"),
    ],
)
def test_bad_knobs_raise_one_clear_line(knobs, message):
    with pytest.raises(ValueError) as exc:
        envs.make("synlogic", **knobs)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_pickles(env):
    fresh = envs.make("synlogic")
    assert pickle.loads(pickle.dumps(fresh)) == fresh
    env.dataset("train")
    clone = pickle.loads(pickle.dumps(env))
    row = env.dataset("train")[0]
    assert clone.score(wrap(row["reference"]), row).reward == 1.0


def test_yaml_composes_and_every_knob_is_documented_in_the_config_reference():
    from hydra import compose, initialize_config_dir

    from rlexp.__main__ import CONF_DIR
    from rlexp.config import env_from, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["env=synlogic", "env.tasks=[sudoku]", "env.difficulty=5"])
    built = env_from(cfg.env)
    assert isinstance(built, synlogic.SynLogic) and built.tasks == ["sudoku"] and built.difficulty == 5
    reference = (Path(CONF_DIR).parent / "docs" / "config.md").read_text().split("## env=synlogic", 1)[1]
    for knob in envs.make("synlogic").knobs():
        assert knob == "name" or f"| `{knob}` |" in reference, knob
    with pytest.raises(ConfigError, match="difficulty"):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            env_from(compose(config_name="config", overrides=["env=synlogic", "env.difficulty=0"]).env)


# -- hub rows, offline ---------------------------------------------------------------------------------


def hub_row(source: str, data, *, as_text: bool = False, index: int = 0) -> dict:
    game_data_str = data if isinstance(data, str) else json.dumps(data)
    extra = {"game_data_str": game_data_str, "index": index, "source_file": "x.jsonl"}
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": "..."}],
        "ability": "logic",
        "reward_model": {"ground_truth": "", "style": "rule"},
        "extra_info": json.dumps(extra) if as_text else extra,
    }


def _hub_rows():
    sudoku = T.generate("sudoku", 3, 8)
    grid = [["X" if v == 0 else v for v in row] for row in sudoku.puzzle["grid"]]
    survo = T.generate("survo", 3, 4)
    kuku = T.generate("kukurasu", 3, 4)
    kuku_solution = [["1" if v else "X" for v in row] for row in json.loads(kuku.reference)]
    futo_answer = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
    return [
        hub_row(
            "game_of_24",
            {
                "question": "q",
                "answer": "",
                "difficulty": 2,
                "metadata": {
                    "numbers": [1, 2, 3, 4],
                    "solutions": ["nums: (1, 2, 3, 4), ops: ('*', '*', '*')"],
                    "candidates": list(range(1, 10)),
                    "operators": ["+", "-", "*", "/"],
                    "result": 24,
                    "num_of_numbers": 4,
                },
            },
            index=7,
        ),
        hub_row(
            "val/cryptarithm",
            {
                "question": "q",
                "answer": "9567 + 1085 = 10652",
                "metadata": {
                    "numbers": [9567, 1085, 10652],
                    "letter_words": ["SEND", "MORE", "MONEY"],
                    "operators": ["+"],
                    "digit_map": {"S": 9},
                    "num_letter": 8,
                    "operator_num": 1,
                },
            },
            as_text=True,
        ),
        hub_row(
            "sudoku",
            {
                "question": "q",
                "answer": str(tuple(tuple(r) for r in json.loads(sudoku.reference))),
                "difficulty": 3,
                "metadata": {"original_sudoku": grid, "complete_sudoku": json.loads(sudoku.reference), "unique_solution": True},
            },
        ),
        hub_row(
            "futoshiki",
            {
                "question": "q",
                "answer": futo_answer,
                "metadata": {
                    "grid_size": 4,
                    "num_inequality_signs": 2,
                    "num_prefilled_coords": 2,
                    "prefilled_coords": [[0, 0], [3, 3]],
                    "constraints": [[[0, 1], [0, 2], "<"], [[1, 0], [2, 0], ">"]],
                },
            },
        ),
        hub_row(
            "kukurasu",
            {
                "question": "q",
                "answer": "",
                "metadata": {
                    "grid": [["X"] * kuku.puzzle["cols"]] * kuku.puzzle["rows"],
                    "row_sums": kuku.puzzle["row_sums"],
                    "col_sums": kuku.puzzle["col_sums"],
                    "solution": kuku_solution,
                    "n": kuku.puzzle["rows"],
                    "m": kuku.puzzle["cols"],
                },
            },
        ),
        hub_row(
            "val/survo",
            {
                "question": "q",
                "answer": survo.reference,
                "metadata": {
                    "original_matrix": survo.puzzle["grid"],
                    "filled_matrix": json.loads(survo.reference),
                    "candidate_numbers": list(reversed(survo.puzzle["candidates"])),
                    "n": survo.puzzle["size"],
                    "x": 5,
                },
            },
        ),
        hub_row(
            "dyck_language",
            {
                "question": "q",
                "answer": "([{}])",
                "metadata": {
                    "full_sequence": "([{}])",
                    "question_sequence": "([{",
                    "n_types": 3,
                    "total_length": 6,
                    "fill_length": 3,
                },
            },
        ),
        hub_row(
            "boolean_expressions",
            {
                "question": "Evaluate:\n\nA. True and False\nB. not (False)\nC. (3 > 2) or False\n\nWhich options are true?",
                "answer": "B,C",
                "difficulty": 1,
                "metadata": {},
            },
        ),
        # skipped: another family, garbage, missing pieces, an answer our verifier refuses
        hub_row("val/web_of_lies", {"question": "q", "answer": "yes", "metadata": {}}),
        hub_row("zebra_puzzle", {"question": "q", "answer": "x"}),
        hub_row("sudoku", "{this is not json"),
        hub_row("game_of_24", {"question": "q", "answer": "", "metadata": {"numbers": "four"}}),
        hub_row("game_of_24", {"question": "q", "answer": "", "metadata": {"numbers": [1, 1, 1, 1], "result": 24}}),
        hub_row(
            "futoshiki",
            {
                "question": "q",
                "answer": futo_answer,
                "metadata": {"grid_size": 4, "prefilled_coords": [], "constraints": [[[0, 0], [0, 1], ">"]]},
            },
        ),  # sign contradicts the answer
        hub_row("boolean_expressions", {"question": "no options here", "answer": "A"}),
        {"data_source": "dyck_language", "extra_info": None},
        {"data_source": None},
        "not even a dict",
    ]


def test_hub_rows_map_onto_our_verifiers(env):
    rows, skipped = hub.map_hub_rows(_hub_rows())
    # the futoshiki row whose stored answer breaks its sign is kept: the puzzle has other solutions
    assert [r["task"] for r in rows] == list(FAMILIES) + ["futoshiki"]
    assert skipped["task not implemented"] == 2 and skipped["unknown task"] == 1  # web_of_lies, zebra_puzzle; None
    assert sum(k for why, k in skipped.items() if why.startswith("unmappable")) == 5
    assert skipped["unmappable (JSONDecodeError)"] == 1 and skipped["unsolvable (our solver finds no solution)"] == 1
    assert sum(skipped.values()) == 9
    assert rows[0]["seed"] == 7 and rows[0]["difficulty"] == 2 and rows[1]["difficulty"] == 0
    for mapped in rows:
        row = {"task": mapped["task"], "difficulty": 0, "puzzle": json.dumps(mapped["puzzle"])}
        assert env.score(wrap(mapped["reference"]), row).reward == 1.0, mapped["task"]
        assert env.score(wrap("[[0]]"), row).reward == 0.0
    only, skipped = hub.map_hub_rows(_hub_rows(), families=["sudoku"])
    assert [r["task"] for r in only] == ["sudoku"] and skipped["family not selected"] == 8


def test_hub_source_builds_rows_from_the_mapper(monkeypatch):
    calls = []

    def fake_load(subset, split):
        calls.append((subset, split))
        return _hub_rows()

    monkeypatch.setattr(hub, "load_hub_rows", fake_load)
    env = envs.make("synlogic", source="hub", subset="hard", tasks=["sudoku", "dyck_language"], train_size=5, eval_size=1)
    train, test = env.dataset("train"), env.dataset("test")
    assert calls == [("hard", "train"), ("hard", "validation")]
    assert train["task"] == ["sudoku", "dyck_language"] and len(test) == 1
    assert set(train["source"]) == {"synlogic_hub"} and all(train["game_data_str"])
    for row in train:
        assert env.score(wrap(row["reference"]), row).reward == 1.0
        assert "<answer>" in row["prompt"][0]["content"]


def test_hub_offline_is_one_config_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'MiniMaxAI/SynLogic' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError) as exc:
        envs.make("synlogic", source="hub").dataset("test")
    assert "\n" not in str(exc.value) and "env.source=procedural" in str(exc.value)


# -- rows as SynLogic writes them (issue 12): task names, stored answers that break their puzzle, its own prompts ------

FUTO_STORED = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]


def futoshiki_row(prefilled, constraints, *, source="futoshiki", index=0):
    return hub_row(
        source,
        {
            "question": "Current puzzle:\n1 X X X\n...",
            "answer": FUTO_STORED,
            "metadata": {
                "grid_size": 4,
                "num_inequality_signs": len(constraints),
                "num_prefilled_coords": len(prefilled),
                "prefilled_coords": prefilled,
                "constraints": constraints,
            },
        },
        index=index,
    )


def as_row(mapped: dict) -> dict:
    return {
        "task": mapped["task"],
        "difficulty": 0,
        "puzzle": json.dumps(mapped["puzzle"]),
        "prompt": [{"role": "user", "content": mapped["prompt"]}],
    }


def test_every_name_of_synlogics_task_table_is_accepted():
    names = hub.SYNLOGIC_TASKS
    assert "mathador" in names and "game_of_24" not in names  # SynLogic's table has no game_of_24 key
    assert len(names) == len(set(names)) and {"bbh_web_of_lies", "bbeh_zebra_puzzles", "arc_agi_2"} <= set(names)
    assert {hub.task_family(n) for n in names} - {None} == set(FAMILIES)
    data = {"question": "q", "answer": "", "metadata": {"numbers": [1, 2, 3, 4], "result": 24, "operators": ["+", "*"]}}
    rows = [hub_row(name, data) for name in names] + [hub_row(f"val/{name}", data) for name in names]
    rows += [hub_row("game_of_24", data), hub_row("chess", data), hub_row("", data)]
    mapped, skipped = hub.map_hub_rows(rows)
    implemented = [n for n in names if hub.task_family(n)]
    assert skipped["task not implemented"] == 2 * (len(names) - len(implemented)) and skipped["unknown task"] == 2
    # the mathador rows (and our own name) map onto game_of_24; the other families' rows here lack their data
    assert [r["task"] for r in mapped] == ["game_of_24"] * 3
    assert sum(k for why, k in skipped.items() if why.startswith("unmappable")) == 2 * (len(implemented) - 1)
    for r in mapped:
        assert T.verify("game_of_24", r["puzzle"], r["reference"]).ok and r["from_solver"]
    assert envs.make("synlogic", tasks=["mathador", "sudoku"]).tasks == ["game_of_24", "sudoku"]
    with pytest.raises(ValueError, match="twice"):
        envs.make("synlogic", tasks=["mathador", "game_of_24"])


def test_a_futoshiki_row_whose_stored_answer_breaks_a_sign_is_kept_and_any_valid_grid_passes(env):
    # SynLogic's generator draws signs without looking at the stored grid: (1,2) > (1,3) reads 2 > 3 in it
    broken = futoshiki_row([[0, 0]], [[[0, 1], [0, 2], ">"]])
    impossible = futoshiki_row([[0, 0]], [[[0, 0], [0, 1], ">"]])  # the given 1 would have to be larger
    givens_clash = futoshiki_row([[0, 0], [0, 1]], [[[0, 0], [0, 1], ">"]])  # both cells given: 1 > 2
    rows, skipped = hub.map_hub_rows([broken, impossible, givens_clash])
    assert len(rows) == 1 and skipped == {"unsolvable (our solver finds no solution)": 2}
    mapped = rows[0]
    assert mapped["from_solver"] and mapped["reference"] != json.dumps(FUTO_STORED)
    row = as_row(mapped)
    stored = env.score(wrap("[[1 2 3 4,3 4 1 2,2 1 4 3,4 3 2 1]]"), row)
    assert stored.reward == 0.0 and stored.feedback == "constraint (1,2) > (1,3) violated"
    # every solution passes, in our format and in SynLogic's [[a b c d,...]]
    solutions = latin_search([1] + [0] * 15, 4, constraints=((2, 1),), limit=50)
    assert len(solutions) > 2
    for flat in solutions:
        grid = [flat[i * 4 : (i + 1) * 4] for i in range(4)]
        spaced = "[[" + ",".join(" ".join(map(str, r)) for r in grid) + "]]"
        assert env.score(wrap(json.dumps(grid)), row).reward == 1.0
        assert env.score(wrap(spaced), row).reward == 1.0


def test_latin_search_refuses_given_cells_that_break_a_sign():
    assert latin_search([1, 2, 0, 0], 2, constraints=((1, 0),)) == []
    assert latin_search([1, 2, 0, 0], 2, constraints=((0, 1),)) == [[1, 2, 2, 1]]


def test_rows_without_a_usable_stored_answer_are_solved_or_dropped(env):
    sudoku = T.generate("sudoku", 5, 7)
    kuku = T.generate("kukurasu", 5, 6)
    survo = T.generate("survo", 5, 6)
    wrong_fill = [row[:] for row in json.loads(survo.reference)]
    wrong_fill[0][0] += 1
    rows = [
        hub_row("sudoku", {"question": "q", "answer": "", "metadata": {"original_sudoku": sudoku.puzzle["grid"]}}),
        hub_row(
            "kukurasu",
            {
                "question": "q",
                "answer": "",
                "metadata": {"row_sums": kuku.puzzle["row_sums"], "col_sums": kuku.puzzle["col_sums"]},
            },
        ),
        hub_row(
            "survo",
            {
                "question": "q",
                "answer": "",
                "metadata": {
                    "original_matrix": survo.puzzle["grid"],
                    "candidate_numbers": survo.puzzle["candidates"],
                    "filled_matrix": wrong_fill,
                },
            },
        ),
        hub_row("dyck_language", {"question": "q", "answer": "", "metadata": {"question_sequence": "<[({"}}),
        # no grid has these sums, no filling uses these candidates, no completion fixes a wrong closer
        hub_row("kukurasu", {"question": "q", "answer": "", "metadata": {"row_sums": [3, 3], "col_sums": [1, 1]}}),
        hub_row(
            "survo",
            {
                "question": "q",
                "answer": "",
                "metadata": {"original_matrix": [[0, 1, 3], [2, 0, 4], [3, 2, 5]], "candidate_numbers": [7, 7]},
            },
        ),
        hub_row("dyck_language", {"question": "q", "answer": "", "metadata": {"question_sequence": "(]"}}),
    ]
    mapped, skipped = hub.map_hub_rows(rows)
    assert [r["task"] for r in mapped] == ["sudoku", "kukurasu", "survo", "dyck_language"]
    assert skipped == {"unsolvable (our solver finds no solution)": 3}
    assert mapped[3]["reference"] == "<[({})]>"
    for r in mapped:
        assert r["from_solver"] and env.score(wrap(r["reference"]), as_row(r)).reward == 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_solve_finds_an_answer_our_verifier_accepts(generated, family):
    for d, s in itertools.product(DIFFICULTIES[:3], SEEDS):
        puzzle = generated[family, d, s].puzzle
        answer = T.solve(family, puzzle)
        if family == "boolean_expressions":
            assert answer is None  # its truth comes with the row, nothing to search
        else:
            assert answer is not None and T.verify(family, puzzle, answer).ok, (family, d, s)


# SynLogic-style boolean options (written here): numbers as truth values, worded and Chinese comparisons, true
# division. A: not (-1 < 2.5) = False; B: True and 0 = 0 (false); C: 9.5 >= 9 = True; D: (-1 != -1) or False = False;
# E: 4 > 3 = True
BOOL_QUESTION = (
    "Evaluate the following boolean expressions and select the ones that are true:\n\n"
    "A. not ((4 * 2 - 3 * 3) is less than (7 - (9 / 2)))\n"
    "B. (The capital of France is Paris.) and ((2 - 5) plus (3))\n"
    "C. (12 - (5 / 2)) is greater than or equal to (9)\n"
    "D. ((1 * 2 + 3 * -1) is not (-1)) or (False)\n"
    "E. (6 减 2) 大于 (3)\n\n"
    "Which options are true? List all option labels that are true, separated by commas.Please put your final "
    "answer inside \\boxed{}."
)


def test_hub_boolean_rows_are_shown_with_synlogics_own_question():
    row = hub_row("val/boolean_expressions", {"question": BOOL_QUESTION, "answer": "C,E", "difficulty": 1, "metadata": None})
    mapped, skipped = hub.map_hub_rows([row])
    assert not skipped and mapped[0]["puzzle"]["labels"] == list("ABCDE")
    prompt = mapped[0]["prompt"]
    assert prompt.startswith(BOOL_QUESTION) and "is greater than or equal to" in prompt and "大于" in prompt
    assert "usual meaning" not in prompt  # our own rules text describes other options
    assert "<think>" in prompt and "<answer>" in prompt.split(BOOL_QUESTION)[1]
    syn = envs.make("synlogic")
    row = as_row(mapped[0])
    for answer, reward in [("C,E", 1), ("\\boxed{C,E}", 1), ("$\\boxed{E, C}$", 1), ("\\boxed{C}", 0), ("B,C,E", 0)]:
        assert syn.score(wrap(answer), row).reward == reward, answer


def test_hub_rows_accept_the_answer_format_synlogics_prompt_asks_for(env):
    """The stored answers of these rows, written the way SynLogic's own prompts ask for them, score 1."""
    crypt = {
        "question": "q",
        "answer": "9567 + 1085 = 10652",
        "metadata": {"numbers": [9567, 1085, 10652], "letter_words": ["SEND", "MORE", "MONEY"], "operators": ["+"]},
    }
    sudoku = T.generate("sudoku", 4, 8)
    sudoku_grid = json.loads(sudoku.reference)
    kuku = T.generate("kukurasu", 4, 5)
    kuku_grid = [["1" if v else "X" for v in row] for row in json.loads(kuku.reference)]
    survo = T.generate("survo", 4, 5)
    raws = [
        hub_row(
            "mathador",
            {
                "question": "q",
                "answer": "",
                "metadata": {"numbers": [3, 3, 8, 8], "result": 24, "operators": ["+", "-", "*", "/"]},
            },
        ),
        hub_row("cryptarithm", crypt),
        hub_row("cryptarithm", crypt),
        hub_row(
            "sudoku",
            {
                "question": "q",
                "answer": "",
                "metadata": {"original_sudoku": sudoku.puzzle["grid"], "complete_sudoku": sudoku_grid},
            },
        ),
        futoshiki_row([[0, 0]], []),
        hub_row(
            "kukurasu",
            {
                "question": "q",
                "answer": "",
                "metadata": {"row_sums": kuku.puzzle["row_sums"], "col_sums": kuku.puzzle["col_sums"], "solution": kuku_grid},
            },
        ),
        hub_row(
            "survo",
            {
                "question": "q",
                "answer": survo.reference,
                "metadata": {
                    "original_matrix": survo.puzzle["grid"],
                    "candidate_numbers": survo.puzzle["candidates"],
                    "filled_matrix": json.loads(survo.reference),
                },
            },
        ),
        hub_row("dyck_language", {"question": "q", "answer": "([{}])", "metadata": {"question_sequence": "([{"}}),
        hub_row("boolean_expressions", {"question": BOOL_QUESTION, "answer": "C,E"}),
    ]
    mapped, skipped = hub.map_hub_rows(raws)
    assert not skipped and len(mapped) == len(raws)
    synlogic_answers = [
        "```python\n8 / (3 - 8 / 3)\n```",
        "The answer is 9567 + 1085 = 10652.",
        "答案是 9567 + 1085 = 10652。",
        "```python\n" + str(tuple(tuple(r) for r in sudoku_grid)) + "\n```",
        "[[1 2 3 4,3 4 1 2,2 1 4 3,4 3 2 1]]",
        json.dumps(kuku_grid),
        f"```python\n{survo.reference}\n```",
        "([{}])",
        "\\boxed{C,E}",
    ]
    for mapped_row, answer in zip(mapped, synlogic_answers):
        row = as_row(mapped_row)
        assert env.score(wrap(answer), row).reward == 1.0, (mapped_row["task"], answer)
        assert env.score(wrap(mapped_row["reference"]), row).reward == 1.0
    wrong = [
        "```python\n8 * 3 - 8 + 3\n```",
        "The answer is 9567 + 1085 = 10653.",
        "答案是 9566 + 1085 = 10652。",
        "```python\n" + str(tuple(tuple(r) for r in sudoku_grid[::-1])) + "\n```",
        "[[1 2 3 4,1 2 3 4,2 1 4 3,4 3 2 1]]",
        json.dumps([["X"] * len(kuku_grid[0])] * len(kuku_grid)),
        "```python\n[[0]]\n```",
        "([{)]}",
        "\\boxed{C}",
    ]
    for mapped_row, answer in zip(mapped, wrong):
        assert env.score(wrap(answer), as_row(mapped_row)).reward == 0.0, (mapped_row["task"], answer)


def _write_rows(path, rows):
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{not json\n")


def _file_rows():
    dyck = {"question": "Complete: ([{", "answer": "([{}])", "metadata": {"question_sequence": "([{"}}
    rows = [hub_row("dyck_language", dyck, index=i) for i in range(3)] + [hub_row("val/dyck_language", dyck, index=9)]
    rows.append(futoshiki_row([[0, 0]], [[[0, 1], [0, 2], ">"]], source="val/futoshiki", index=10))
    rows.append(
        hub_row(
            "val/mathador", {"question": "Make 24", "answer": "", "metadata": {"numbers": [4, 6, 1, 1], "result": 24}}, index=11
        )
    )
    rows.append(hub_row("web_of_lies", {"question": "q", "answer": "yes"}, index=12))
    return rows


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_source_reads_hub_rows_from_a_local_file(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    _write_rows(path, _file_rows())
    local = envs.make("synlogic", source=str(path))
    train, test = local.dataset("train"), local.dataset("test")
    assert train["seed"] == [0, 1, 2] and test["seed"] == [9, 10, 11]  # val/ rows are the test split
    assert test["task"] == ["dyck_language", "futoshiki", "game_of_24"] and set(train["source"]) == {"synlogic_hub"}
    assert train[0]["prompt"][0]["content"].startswith("Complete: ([{\n\n")
    for row in list(train) + list(test):
        assert local.score(wrap(row["reference"]), row).reward == 1.0
    assert local.score(wrap("([{}])"), test[0]).reward == 1.0
    assert local.score(wrap("([{)]}"), test[0]).reward == 0.0
    only = envs.make("synlogic", source=str(path), tasks=["mathador"], eval_size=5)
    assert only.dataset("test")["task"] == ["game_of_24"]


def test_source_reads_a_mirror_folder_and_refuses_what_it_cannot_use(tmp_path):
    rows = _file_rows()
    _write_rows(tmp_path / "train.parquet", rows[:3])
    _write_rows(tmp_path / "validation.jsonl", rows[3:])
    mirror = envs.make("synlogic", source=str(tmp_path))
    assert mirror.dataset("train")["seed"] == [0, 1, 2] and mirror.dataset("test")["seed"] == [9, 10, 11]
    only_train = tmp_path / "only_train.jsonl"
    _write_rows(only_train, rows[:3])
    with pytest.raises(ConfigError, match="no validation rows"):
        envs.make("synlogic", source=str(only_train)).dataset("test")
    with pytest.raises(ConfigError, match="no such file"):
        envs.make("synlogic", source=str(tmp_path / "missing.jsonl")).dataset("train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no train.jsonl or train.parquet"):
        envs.make("synlogic", source=str(tmp_path / "empty")).dataset("train")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match="cannot read it as parquet"):
        envs.make("synlogic", source=str(tmp_path / "broken.parquet")).dataset("train")
    with pytest.raises(ValueError, match="a path to a .jsonl or .parquet file"):
        envs.make("synlogic", source=str(tmp_path / "rows.csv"))
