"""Offline LiveCodeBench-format problems: the procedural families and the hand-written fixture rows."""

from __future__ import annotations

import ast
import base64
import datetime
import io
import json
import pickle
import zlib
from collections import Counter
from pathlib import Path

import pytest

from rlexp.envs import livecode_problems as lp

LCB_COLUMNS = {
    "question_title", "question_content", "platform", "question_id", "contest_id", "contest_date",
    "starter_code", "difficulty", "public_test_cases", "private_test_cases", "metadata",
}  # fmt: skip
FIXTURE = Path(lp.__file__).parent / "data" / "livecode_fixture.jsonl"


@pytest.fixture(scope="module")
def rows():
    return lp.lcb_rows(seed=0)


def all_tests(row: dict) -> list[dict]:
    return json.loads(row["public_test_cases"]) + json.loads(row["private_test_cases"])


def method_parameters(starter_code: str) -> list[str]:
    method = ast.parse(starter_code + "pass").body[0].body[0]
    return [arg.arg for arg in method.args.args[1:]]


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def decode_blob(blob: str) -> list[dict]:
    """LiveCodeBench's compressed test encoding, read without letting the pickle name any global."""
    text = _NoGlobals(io.BytesIO(zlib.decompress(base64.b64decode(blob)))).load()
    assert isinstance(text, str)
    return json.loads(text)


# -- the families ------------------------------------------------------------------------------------------------


def test_every_family_is_one_data_file_with_a_random_case_generator():
    files = sorted(lp.DATA_DIR.glob("*.yaml"))
    assert len(files) == len(lp.problems()) == len(lp.RANDOM_CASES)
    assert {problem.question_id for problem in lp.problems()} == set(lp.RANDOM_CASES)
    assert {path.name.split("-")[0] for path in files} == {"stdin", "functional"}


def test_families_cover_both_styles_and_all_difficulties():
    assert len(lp.problems()) >= 30
    styles = Counter(problem.testtype for problem in lp.problems())
    assert styles["stdin"] >= 12 and styles["functional"] >= 12
    assert {problem.difficulty for problem in lp.problems()} == {"easy", "medium", "hard"}
    assert len({problem.question_id for problem in lp.problems()}) == len(lp.problems())


def test_rows_have_the_livecodebench_columns(rows):
    assert len(rows) == len(lp.problems())
    dates = []
    for row in rows:
        assert set(row) == LCB_COLUMNS | {"reference"}
        assert all(isinstance(value, str) for value in row.values())
        assert row["platform"] == "rlexp" and row["contest_id"] == "rlexp-procedural"
        assert row["difficulty"] in ("easy", "medium", "hard")
        dates.append(datetime.datetime.fromisoformat(row["contest_date"]))
        metadata = json.loads(row["metadata"])
        testtype = "functional" if row["starter_code"] else "stdin"
        assert metadata == ({"func_name": metadata["func_name"]} if testtype == "functional" else {})
        for test in all_tests(row):
            assert set(test) == {"input", "output", "testtype"} and test["testtype"] == testtype
            assert isinstance(test["input"], str) and isinstance(test["output"], str)
    assert min(dates) >= datetime.datetime(2023, 5, 1) and max(dates) <= datetime.datetime(2025, 4, 30)
    assert len(set(dates)) == len(rows)


def test_every_third_of_the_date_range_holds_a_mix(rows):
    by_date = sorted(rows, key=lambda row: row["contest_date"])
    third = len(by_date) // 3
    for part in (by_date[:third], by_date[third : 2 * third], by_date[2 * third :]):
        assert {row["difficulty"] for row in part} == {"easy", "medium", "hard"}
        assert {bool(row["starter_code"]) for row in part} == {True, False}


def test_functional_rows_look_like_leetcode(rows):
    for row in rows:
        if not row["starter_code"]:
            continue
        func_name = json.loads(row["metadata"])["func_name"]
        assert row["starter_code"].startswith(f"class Solution:\n    def {func_name}(self")
        assert row["starter_code"].endswith(":\n        ")
        assert f"def {func_name}(self" in row["reference"]


def test_each_problem_has_10_to_30_tests_and_2_or_3_public(rows):
    for row in rows:
        public = json.loads(row["public_test_cases"])
        assert 2 <= len(public) <= 3
        assert 10 <= len(all_tests(row)) <= 30, row["question_id"]
        inputs = [test["input"] for test in all_tests(row)]
        assert len(set(inputs)) == len(inputs), row["question_id"]


def test_test_count_follows_the_bounds():
    for row in lp.lcb_rows(seed=3, min_tests=12, max_tests=12):
        assert len(all_tests(row)) == 12


def test_rows_are_deterministic_and_seeds_differ(rows):
    assert lp.lcb_rows(seed=0) == rows
    other = lp.lcb_rows(seed=1)
    for a, b in zip(rows, other):
        assert a["question_id"] == b["question_id"] and a["question_content"] == b["question_content"]
        assert a["private_test_cases"] != b["private_test_cases"], a["question_id"]


def test_public_tests_are_the_samples_in_the_statement(rows):
    for row in rows:
        content = row["question_content"]
        public = json.loads(row["public_test_cases"])
        if not row["starter_code"]:
            for number, test in enumerate(public, 1):
                assert f"Sample Input {number}\n\n{test['input']}" in content
                assert f"Sample Output {number}\n\n{test['output']}" in content
            continue
        names = method_parameters(row["starter_code"])
        for number, test in enumerate(public, 1):
            args = [json.loads(line) for line in test["input"].split("\n")]
            shown = ", ".join(f"{name} = {json.dumps(arg, separators=(',', ':'))}" for name, arg in zip(names, args))
            output = json.dumps(json.loads(test["output"]), separators=(",", ":"))
            assert f"Example {number}:\n\nInput: {shown}\nOutput: {output}\n" in content


def test_statements_have_the_livecodebench_sections(rows):
    for row in rows:
        content = row["question_content"]
        if row["starter_code"]:
            assert "Example 1:" in content and "Constraints:" in content
        else:
            for section in ("\nInput\n", "\nOutput\n", "\nConstraints\n", "Sample Input 1", "Sample Output 1"):
                assert section in content


def test_functional_inputs_have_one_json_line_per_parameter(rows):
    for row in rows:
        if not row["starter_code"]:
            continue
        count = len(method_parameters(row["starter_code"]))
        for test in all_tests(row):
            lines = test["input"].split("\n")
            assert len(lines) == count, row["question_id"]
            for line in lines:
                json.loads(line)
            json.loads(test["output"])


def test_references_reproduce_every_output(rows):
    for problem, row in zip(lp.problems(), rows):
        for test in all_tests(row):
            assert lp.run_reference(row, test["input"]) == test["output"], row["question_id"]
            assert lp.run_reference(problem, test["input"]) == test["output"]


def test_outputs_are_small(rows):
    for row in rows:
        for test in all_tests(row):
            assert len(test["input"]) < 10_000 and len(test["output"]) < 10_000


def test_some_stdin_problems_print_floats_or_several_lines(rows):
    stdin_outputs = [test["output"] for row in rows if not row["starter_code"] for test in all_tests(row)]
    assert any(output.count("\n") > 1 for output in stdin_outputs)
    assert any("." in output and output.replace(".", "", 1).strip().isdigit() for output in stdin_outputs)


def test_run_reference_runs_stdin_programs_and_methods():
    by_id = {problem.question_id: problem for problem in lp.problems()}
    assert lp.run_reference(by_id["rlexp-sum-array"], "3\n1 2 3\n") == "6\n"
    assert lp.run_reference(by_id["rlexp-two-sum"], "[1, 5, 9]\n14") == "[1, 2]"


# -- the hand-written fixture ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_rows():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def fixture_tests(row: dict) -> list[dict]:
    private = row["private_test_cases"]
    private = json.loads(private) if private.startswith("[") else decode_blob(private)
    return json.loads(row["public_test_cases"]) + private


def test_fixture_has_the_four_kinds_of_row(fixture_rows):
    assert len(fixture_rows) == 4
    for row in fixture_rows:
        assert set(row) == LCB_COLUMNS | {"reference"}
        assert all(isinstance(value, str) for value in row.values())
        datetime.datetime.fromisoformat(row["contest_date"])
    assert {"leetcode", "atcoder", "codeforces"} <= {row["platform"] for row in fixture_rows}

    functional = [row for row in fixture_rows if json.loads(row["metadata"]).get("func_name")]
    assert len(functional) == 1 and functional[0]["platform"] == "leetcode"
    assert functional[0]["starter_code"].startswith("class Solution:")
    assert all(test["testtype"] == "functional" for test in fixture_tests(functional[0]))

    stdin = [row for row in fixture_rows if row not in functional]
    assert all(row["starter_code"] == "" and json.loads(row["metadata"]) == {} for row in stdin)
    assert all(test["testtype"] == "stdin" for row in stdin for test in fixture_tests(row))
    blobs = [row for row in stdin if not row["private_test_cases"].startswith("[")]
    assert len(blobs) == 1
    assert len(decode_blob(blobs[0]["private_test_cases"])) > 0
    floats = [row for row in stdin if any("." in test["output"] for test in fixture_tests(row))]
    assert floats and any(row["private_test_cases"].startswith("[") for row in stdin if row not in floats)


def test_restricted_unpickler_refuses_globals():
    blob = base64.b64encode(zlib.compress(pickle.dumps(Counter("ab")))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_blob(blob)


def test_fixture_samples_are_in_the_statement(fixture_rows):
    for row in fixture_rows:
        if row["starter_code"]:
            continue
        for test in json.loads(row["public_test_cases"]):
            assert test["input"] in row["question_content"] and test["output"] in row["question_content"]


def test_fixture_references_reproduce_their_outputs(fixture_rows):
    for row in fixture_rows:
        for test in fixture_tests(row):
            assert lp.run_reference(row, test["input"]) == test["output"], row["question_id"]
