"""env=livecode (LiveCodeBench, arXiv 2403.07974): loading, prompts, extraction, comparison, feedback, and scoring in the sandbox."""

import base64
import json
import os
import pickle
import zlib
from types import SimpleNamespace

import pytest

from rlexp import envs, evaluate, sandbox
from rlexp.envs import livecode
from rlexp.envs.livecode import (
    FORMAT_FEEDBACK,
    LCB_SYSTEM,
    decode_tests,
    extract_code,
    functional_output_matches,
    stdin_output_matches,
)
from rlexp.errors import ConfigError
from rlexp.rewards import EnvReward


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def env():
    return envs.make("livecode", time_limit=2.0)


@pytest.fixture(scope="module")
def rows(env):
    return {split: list(env.dataset(split)) for split in ("train", "test")}


def row_of(rows, split, question_id):
    return next(r for r in rows[split] if r["question_id"] == question_id)


# -- prompts and extraction --------------------------------------------------------------------------------------


def test_lcb_prompts_with_and_without_starter_code():
    system, user = livecode.lcb_prompt("Add two numbers.", "")
    assert system == {"role": "system", "content": LCB_SYSTEM}
    assert user["content"].startswith("### Question:\nAdd two numbers.\n\n### Format: Read the inputs from stdin")
    assert user["content"].endswith(
        "```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)\n\n"
    )
    starter = "class Solution:\n    def f(self, x: int) -> int:\n        "
    _, user = livecode.lcb_prompt("Q", starter)
    assert (
        f"### Format: You will use the following starter code to write the solution to the problem and enclose your code within delimiters.\n```python\n{starter}\n```\n\n### Answer:"
        in user["content"]
    )
    (only,) = livecode.sdpo_prompt("Q", starter)
    assert only["content"].startswith("You are a coding expert.") and only["content"].endswith(
        f"Q\n\nYour solution should have the following signature:\n```python\n{starter}\n```"
    )


@pytest.mark.parametrize(
    "text, code",
    [
        ("no code at all", None),
        ("```python\na = 1\n```\nthen\n```python\nb = 2\n```", "b = 2\n"),
        ("```cpp\nint main() {}\n```", None),
        ("<think>```python\nx = 1\n```</think> I give up.", None),
        ("<think>draft</think>\n```py\nprint(1)\n```", "print(1)\n"),
        ("```\nprint(2)\n```", "print(2)\n"),
        ("```python3\nprint(3)\n```\n```cpp\nint x;\n```", "print(3)\n"),
        ("```python\n   \n```", None),
        ("```python\nprint(4)", None),  # never closed: the answer was cut off
    ],
)
def test_extract_code_takes_the_last_python_block_after_thinking(text, code):
    assert extract_code(text) == code


def test_extraction_of_huge_and_hostile_text():
    # a regex that backtracks badly would hang here
    assert [extract_code(t) for t in ("`" * 10**6, "```python\n" * 10**5, "x" * 10**7)] == [None, None, None]
    assert extract_code("```\n" * 200000) is None


# -- comparison --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, expected, same",
    [
        ("1 2\r\n3 \n", "1 2\n3", True),
        ("1.0\n", "1", True),
        ("0.5", "0.50", True),
        ("0.5000001", "0.5", False),  # LiveCodeBench compares Decimals exactly: no tolerance
        ("1 2", "1  2", True),
        ("1\n2", "1 2", False),
        ("abc", "abd", False),
        ("1 2 3", "1 2", False),
        ("", "", True),
        ("NaN", "NaN", True),
        ("inf", "1e999", False),
    ],
)
def test_stdin_comparison_follows_livecodebench(output, expected, same):
    assert stdin_output_matches(output, expected) is same


def test_functional_comparison_is_on_decoded_json():
    assert functional_output_matches("[1, 2]", "[1,2]")
    assert functional_output_matches("1", "1.0")  # LiveCodeBench's ==, unlike canonical-string comparison
    assert not functional_output_matches(None, "1")
    assert not functional_output_matches("[" * 100000, "1")


# -- private tests -----------------------------------------------------------------------------------------------


def blob(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_decode_plain_json_and_the_compressed_blob():
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_tests(json.dumps(tests)) == tests
    assert decode_tests(blob(json.dumps(tests))) == tests
    assert decode_tests("") == []


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/rlexp-pickle-pwned",))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    with pytest.raises(ValueError, match="blocked"):
        decode_tests(blob(_Exploit()))
    import os

    assert not os.path.exists("/tmp/rlexp-pickle-pwned")
    for broken in (blob(["not", "a str"]), blob(json.dumps([{"input": 1}])), "%%%not base64", blob(json.dumps({"a": 1}))):
        with pytest.raises(ValueError):
            decode_tests(broken)


def test_decompression_is_capped(monkeypatch):
    monkeypatch.setattr(livecode, "MAX_PRIVATE_BYTES", 1 << 16)
    with pytest.raises(ValueError, match="too large"):
        decode_tests(blob("x" * (1 << 20)))


def test_a_row_with_broken_private_tests_is_skipped_not_scored(env, rows):
    row = dict(row_of(rows, "test", "rlexp-sum-array"), private_tests=blob(_Exploit()), question_id="broken-1")
    score = env.score(fenced("print(0)"), row)
    assert score.reward is None and score.info["category"] == "broken"
    assert EnvReward("livecode", time_limit=2.0)(
        prompts=[""], completions=[fenced("print(0)")], **{k: [v] for k, v in row.items()}
    ) == [None]


# -- rows and splits ---------------------------------------------------------------------------------------------


def test_procedural_rows_cover_both_styles_and_every_difficulty(rows):
    test = rows["test"]
    assert len(test) >= 30
    assert {r["testtype"] for r in test} == {"stdin", "functional"}
    assert {r["difficulty"] for r in test} == {"easy", "medium", "hard"}
    for r in test:
        assert (r["testtype"] == "functional") == bool(r["starter_code"]) == bool(r["fn_name"])


def test_training_uses_public_tests_plus_a_seeded_half_of_the_private_ones(env, rows):
    for train_row, test_row in zip(rows["train"], rows["test"]):
        train_tests, train_visible = env.tests_for(train_row)
        all_tests, public_count = env.tests_for(test_row)
        public = json.loads(test_row["public_tests"])
        assert all_tests[:public_count] == public and train_tests[: len(public)] == public
        assert train_visible == len(train_tests) and all(t in all_tests for t in train_tests)
    total_private = sum(len(env.tests_for(r)[0]) - len(json.loads(r["public_tests"])) for r in rows["test"])
    train_private = sum(len(env.tests_for(r)[0]) - len(json.loads(r["public_tests"])) for r in rows["train"])
    assert 0.4 < train_private / total_private < 0.6
    public_only = envs.make("livecode", train_test_fraction=0.0)
    r = rows["train"][0]
    assert public_only.tests_for(r)[0] == json.loads(r["public_tests"])


def test_date_window_and_difficulty_filters(rows):
    dates = sorted(r["contest_date"] for r in rows["test"])
    middle = dates[len(dates) // 2][:10]
    early = envs.make("livecode", date_to=middle).dataset("test")
    late = envs.make("livecode", date_from=middle).dataset("test")
    assert len(early) + len(late) == len(rows["test"])
    assert max(early["contest_date"]) < middle <= min(late["contest_date"])
    assert set(envs.make("livecode", difficulties=["hard"]).dataset("test")["difficulty"]) == {"hard"}
    with pytest.raises(ConfigError, match="no problems left"):
        envs.make("livecode", date_from="2099-01-01").dataset("test")


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"source": "nowhere"}, "source must be"),
        ({"source": "lcb", "release": "release_v9"}, "release must be"),
        ({"sandbox_level": "docker"}, "sandbox_level"),
        ({"difficulties": ["trivial"]}, "difficulties"),
        ({"date_from": "last year"}, "ISO date"),
        ({"train_test_fraction": 1.5}, "train_test_fraction"),
    ],
)
def test_bad_knobs_are_one_clear_error(knobs, message):
    with pytest.raises(ValueError, match=message):
        envs.make("livecode", **knobs)


def test_demonstrations_are_the_reference_solutions(env, rows):
    demos = env.demonstrations("train")
    assert len(demos) == len(rows["train"])
    first = demos[0]["messages"]
    assert first[:-1] == rows["train"][0]["prompt"]
    assert first[-1]["content"] == f"```python\n{rows['train'][0]['reference'].rstrip()}\n```"
    assert extract_code(first[-1]["content"]).strip() == rows["train"][0]["reference"].strip()


def test_every_reference_solution_passes_every_test_in_the_sandbox(env, rows):
    fixture = envs.make("livecode", source=str(livecode.FIXTURE))
    for e, split_rows in ((env, rows["train"]), (env, rows["test"]), (fixture, list(fixture.dataset("test")))):
        scores = e.score_batch([fenced(r["reference"]) for r in split_rows], split_rows)
        failed = [(r["question_id"], s.feedback) for r, s in zip(split_rows, scores) if not s.success]
        assert failed == []
        assert all(s.reward == 1.0 and s.feedback == "" and s.info["passed"] == s.info["total"] for s in scores)


# -- the hub loader, offline -------------------------------------------------------------------------------------


def test_fixture_rows_decode_through_the_loader():
    fixture = envs.make("livecode", source=str(livecode.FIXTURE))
    rows = list(fixture.dataset("test"))
    assert {r["platform"] for r in rows} >= {"leetcode", "atcoder", "codeforces"}
    functional = [r for r in rows if r["testtype"] == "functional"]
    assert len(functional) == 1 and functional[0]["fn_name"]
    raw = [json.loads(line) for line in livecode.FIXTURE.read_text().splitlines()]
    compressed = [r for r in raw if not r["private_test_cases"].lstrip().startswith("[")]
    assert len(compressed) == 1
    row = next(r for r in rows if r["question_id"] == compressed[0]["question_id"])
    assert len(fixture.tests_for(row)[0]) > len(json.loads(row["public_tests"]))


def test_hub_release_reads_its_jsonl_files(monkeypatch, tmp_path):
    import huggingface_hub

    asked = []

    def fake_download(repo_id, filename, repo_type, local_files_only):
        asked.append((repo_id, filename, repo_type))
        return str(livecode.FIXTURE)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    rows = livecode.load_hub_rows("release_v3")
    assert [f for _, f, _ in asked] == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert {(r, t) for r, _, t in asked} == {(livecode.HUB_REPO, "dataset")}
    assert len(rows) == 3 * len(livecode.FIXTURE.read_text().splitlines())
    asked.clear()
    assert len(envs.make("livecode", source="lcb", release="v5").dataset("test")) == 4
    assert [f for _, f, _ in asked] == ["test5.jsonl"]


def test_hub_failure_is_one_clear_line(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ConfigError, match="env.source=lcb: could not get .* use env.source=procedural") as info:
        envs.make("livecode", source="lcb").dataset("train")
    assert "\n" not in str(info.value)


def test_demonstrations_without_references_say_what_to_do(monkeypatch):
    monkeypatch.setattr(
        livecode,
        "load_hub_rows",
        lambda release: [
            {k: v for k, v in r.items() if k != "reference"} for r in map(json.loads, livecode.FIXTURE.read_text().splitlines())
        ],
    )
    with pytest.raises(ConfigError, match="env.source=procedural for SFT"):
        envs.make("livecode", source="lcb").demonstrations("train")


# -- scoring and feedback ----------------------------------------------------------------------------------------


def test_format_failure(env, rows):
    score = env.score("I think the answer is 42.", rows["train"][0])
    assert (score.reward, score.success, score.feedback) == (0.0, False, FORMAT_FEEDBACK)
    assert score.info["category"] == "format"


def test_wrong_answer_feedback_shows_input_output_expected(env, rows):
    row = row_of(rows, "train", "rlexp-sum-array")
    tests, _ = env.tests_for(row)
    score = env.score(fenced("print(-1)"), row)
    assert score.reward == 0.0 and score.info["category"] == "wrong_answer"
    assert score.feedback == (
        f"Test Case 1: Wrong Answer\n\nInput\n{tests[0]['input'].rstrip()}\n\nOutput\n-1\n\n"
        f"Expected\n{tests[0]['output'].rstrip()}"
    )
    assert score.info["first_failure"] == 0 and score.info["passed"] == 0


def test_runtime_error_feedback_is_leetcode_style_without_harness_paths(env, rows):
    row = row_of(rows, "train", "rlexp-sum-array")
    score = env.score(fenced("def solve(values):\n    return values[10**6]\n\nsolve([1])"), row)
    assert score.feedback.startswith(
        "Runtime Error\nIndexError: list index out of range\n  return values[10**6]\n"
        "Line 2 in solve (Solution.py)\n\nLast Executed Input\n"
    )
    assert "/" not in score.feedback.split("Last Executed Input")[0]
    compile_error = env.score(fenced("def f(:\n    pass"), row)
    assert compile_error.feedback.startswith("Compile Error\nSyntaxError:")


def test_timeout_feedback(rows):
    quick = envs.make("livecode", time_limit=0.5)
    score = quick.score(fenced("while True: pass"), rows["train"][0])
    assert score.info["category"] == "timeout" and score.feedback.startswith("Time Limit Exceeded\n\nLast Executed Input\n")


def test_feedback_priority_caps_and_shortest_inputs(rows):
    row = row_of(rows, "test", "rlexp-sum-array")
    partial = envs.make("livecode", partial_credit=True, time_limit=2.0)
    # with partial credit every test runs; a wrong answer on each: two shown, shortest inputs first
    score = partial.score(fenced("print('nope')"), row)
    assert score.feedback.count("Wrong Answer") == 2 and score.feedback.startswith("Test Case 1: Wrong Answer")
    tests, visible = partial.tests_for(row)
    shortest = sorted(tests[:visible], key=lambda t: len(t["input"]))[:2]
    assert shortest[0]["input"].rstrip() in score.feedback
    # a runtime error outranks wrong answers
    crash_on_second = (
        "import sys\ndata = sys.stdin.read()\nif data == " + repr(tests[1]["input"]) + ": raise KeyError('k')\nprint('nope')"
    )
    assert partial.score(fenced(crash_on_second), row).feedback.startswith("Runtime Error\nKeyError")
    # everything shown is clipped: long lines, many lines, long outputs; 2000 characters in all
    flood = "print('9' * 5000)\nprint('\\n'.join(['8'] * 50))"
    long = partial.score(fenced(flood), row).feedback
    assert len(long) <= livecode.FEEDBACK_CAP and "9" * 251 not in long


def test_partial_credit_rewards_the_fraction_but_success_needs_all(rows):
    row = row_of(rows, "test", "rlexp-sum-array")
    partial = envs.make("livecode", partial_credit=True, time_limit=2.0)
    tests, _ = partial.tests_for(row)
    lookup = {t["input"]: t["output"] for t in tests[:3]}
    code = f"import sys\nprint({lookup!r}.get(sys.stdin.read(), 'no').strip())"
    score = partial.score(fenced(code), row)
    assert score.reward == pytest.approx(3 / len(tests)) and not score.success
    binary = envs.make("livecode", time_limit=2.0).score(fenced(code), row)
    assert binary.reward == 0.0


def test_hard_coded_public_outputs_fail_the_hidden_tests_and_feedback_never_shows_them(env, rows):
    row = row_of(rows, "test", "rlexp-sum-array")
    tests, visible = env.tests_for(row)
    lookup = {t["input"]: t["output"] for t in tests[:visible]}
    code = f"import sys\nprint({lookup!r}.get(sys.stdin.read(), '0').strip())"
    score = env.score(fenced(code), row)
    assert not score.success and score.info["first_failure"] >= visible
    assert score.feedback.startswith("Wrong Answer on a hidden test")
    for hidden in tests[visible:]:
        assert hidden["input"].strip() not in score.feedback and hidden["output"].strip() not in score.feedback


def test_functional_problem_scoring(env, rows):
    row = next(r for r in rows["test"] if r["testtype"] == "functional")
    good = env.score(fenced(row["reference"]), row)
    assert good.success
    wrong = env.score(fenced(row["starter_code"] + "return None"), row)
    assert wrong.info["category"] == "wrong_answer" and "\n\nOutput\nnull\n\nExpected\n" in wrong.feedback
    # a tuple where a list is expected still passes (LiveCodeBench turns tuples into lists)
    as_tuple = row["reference"].replace("return [", "return tuple([", 1).replace("]\n", "])\n", 1)
    assert as_tuple != row["reference"] and env.score(fenced(as_tuple), row).success


HOSTILE = {
    "fork bomb": "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
    "memory bomb": "x = bytearray(10**10)",
    "infinite loop": "while True: pass",
    "sleep loop": "import time\nwhile True: time.sleep(1)",
    "output flood": "print('x' * 10**9)",
    "one huge line": "import sys\nwhile True: sys.stdout.write('z' * 65536)",
    "write outside": "open('/tmp/rlexp-hostile-env', 'w').write('x')\nopen('/dev/shm/rlexp-hostile-env', 'w').write('x')",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)",
    "kill the parent": "import os\nos.kill(os.getppid(), 9)",
    "kill everything": "import os\nos.kill(-1, 9)",
    "read secrets": "import os, glob\nfound = 'HF_TOKEN' in os.environ\nfor p in glob.glob('/proc/*/environ'):\n"
    "    try: found = found or b'hf_not_for' in open(p, 'rb').read()\n    except OSError: pass\n"
    "print('LEAK' if found else 'clean')",
    "signal tampering": "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nsignal.alarm(0)\nwhile True: pass",
    "deep recursion": "import sys\nsys.setrecursionlimit(10**9)\ndef f(n): return f(n + 1)\nf(0)",
    "100000-digit integer": "print(10**100000)",
    "stdin past EOF": "while True: input()",
    "binary output": "import sys\nsys.stdout.buffer.write(bytes(range(256)))",
}


def test_hostile_programs_through_env_score_each_end_with_a_verdict_and_feedback(rows, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_for_programs")
    quick = envs.make("livecode", time_limit=1.0, require_isolation=True)
    row = row_of(rows, "train", "rlexp-sum-array")
    scores = quick.score_batch([fenced(code) for code in HOSTILE.values()], [row] * len(HOSTILE))
    for name, score in zip(HOSTILE, scores):
        assert score.reward == 0.0 and not score.success, name
        assert score.feedback and score.info["category"] in ("wrong_answer", "runtime_error", "timeout", "output_limit"), name
    secrets = scores[list(HOSTILE).index("read secrets")]
    assert "\nOutput\nclean\n" in secrets.feedback  # the program ran, looked, and found nothing
    if quick.sandbox.launch.level in ("bwrap", "namespaces"):
        assert not os.path.exists("/tmp/rlexp-hostile-env") and not os.path.exists("/dev/shm/rlexp-hostile-env")
    assert quick.score(fenced(row["reference"]), row).success  # the harness is intact afterwards


HIDDEN_LEAKS = {  # ways a program can carry a hidden test's input into what it reports about itself
    "message": "raise ValueError(data)",
    "type name": "raise type(data.strip().replace(' ', '_'), (Exception,), {})()",
    "function name": "def f():\n    raise KeyError(0)\nf.__code__ = f.__code__.replace(co_name=data.strip())\nf()",
    "driver frames": (  # rewrite the lists the driver's frames hold (the source lines it quotes from) with the input
        "frame = sys._getframe()\n"
        "while frame:\n"
        "    for value in list(frame.f_locals.values()):\n"
        "        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):\n"
        "            value[:] = [data] * len(value)\n"
        "    frame = frame.f_back\n"
        "raise KeyError(0)"
    ),
    "time limit": "while True: pass",
    "output": "print(data)",
}


@pytest.mark.parametrize("leak", HIDDEN_LEAKS)
def test_a_hidden_tests_feedback_is_its_verdict_alone(rows, leak):
    quick = envs.make("livecode", time_limit=1.0)
    row = row_of(rows, "test", "rlexp-sum-array")
    tests, visible = quick.tests_for(row)
    lookup = {t["input"]: t["output"] for t in tests[:visible]}
    body = "\n".join("    " + line for line in HIDDEN_LEAKS[leak].splitlines())
    code = (
        f"import sys\ndata = sys.stdin.read()\nlookup = {lookup!r}\n"
        f"if data in lookup:\n    print(lookup[data].strip())\nelse:\n{body}\n"
    )
    score = quick.score(fenced(code), row)
    assert score.info["first_failure"] >= visible  # the public tests passed; a hidden one failed
    verdict = {"time limit": "Time Limit Exceeded", "output": "Wrong Answer"}.get(leak, "Runtime Error")
    assert score.feedback == f"{verdict} on a hidden test ({score.info['passed']} of {len(tests)} tests passed)"


def test_tests_the_batch_deadline_cut_off_are_not_scored(rows):
    slow = envs.make("livecode", time_limit=5.0, batch_timeout_s=1.0, workers=1)
    row = rows["train"][0]
    scores = slow.score_batch([fenced("import time\ntime.sleep(4)")] * 3, [row] * 3)
    assert {s.info["category"] for s in scores} == {"not_scored"}
    assert all(s.reward is None and s.feedback == "" for s in scores)


def test_env_reward_scores_a_batch_in_both_completion_shapes_and_pickles(rows):
    reward = pickle.loads(pickle.dumps(EnvReward("livecode", time_limit=2.0, difficulties=[])))
    row = row_of(rows, "train", "rlexp-sum-array")
    texts = [fenced(row["reference"]), fenced("print(-1)"), "no code"]
    columns = {k: [v] * 3 for k, v in row.items() if k != "prompt"}
    logged, extra = {}, {}
    for completions in (texts, [[{"role": "assistant", "content": t}] for t in texts]):
        out = reward(
            prompts=[row["prompt"]] * 3,
            completions=completions,
            trainer_state=None,
            log_metric=logged.__setitem__,
            log_extra=extra.__setitem__,
            **columns,
        )
        assert out == [1.0, 0.0, 0.0]
    assert extra["category"] == ["pass", "wrong_answer", "format"]
    assert logged["livecode/category/format"] == pytest.approx(1 / 3) and "livecode/reward_wall_ms" in logged


def test_evaluation_reports_pass_at_k_by_difficulty_and_error_rates(env, monkeypatch):
    test_rows = env.dataset("test")

    by_prompt = {json.dumps(r["prompt"]): r for r in test_rows}

    def fake_generate(model, tokenizer, prompts, num_samples, *args):
        # per prompt: one correct sample (easy problems only), one crash, one format failure, one wrong answer
        out = []
        for row in [by_prompt[json.dumps(p)] for p in prompts]:  # evaluation asks for a chunk of prompts at a time
            good = fenced(row["reference"]) if row["difficulty"] == "easy" else "no code"
            crash = fenced("raise ValueError('x')")
            out.append([good, crash, "no code", fenced("print(-1)" if row["testtype"] == "stdin" else "x = 1")])
        return out

    monkeypatch.setattr(evaluate, "generate", fake_generate)
    cfg = SimpleNamespace(splits=[], num_prompts=1000, num_samples=4, k=[1, 4], temperature=1.0, max_new_tokens=8, batch_size=8)
    metrics = evaluate.evaluate(None, None, env, cfg)["test"]
    n_easy = sum(d == "easy" for d in test_rows["difficulty"])
    assert metrics["easy/pass@1"] == 0.25 and metrics["easy/pass@4"] == 1.0 and metrics["easy/n_prompts"] == n_easy
    assert metrics["hard/pass@4"] == 0.0 and metrics["medium/success"] == 0.0
    assert metrics["category/runtime_error"] >= 0.25 and metrics["category/format"] >= 0.25
    assert metrics["pass@1"] == pytest.approx(0.25 * n_easy / len(test_rows))


def test_sandbox_level_is_reported_with_every_score(env, rows):
    score = env.score(fenced("print(1)"), rows["train"][0])
    assert score.info["sandbox_level"] == sandbox.level()


# -- functional answers compared as LiveCodeBench compares them ----------------------------------------------------


def test_functional_comparison_of_integers_past_pythons_digit_limit():
    big = "1" + "0" * 5000  # Python's int() refuses more than 4300 digits; LiveCodeBench allows 50000
    assert functional_output_matches(big, big)
    assert not functional_output_matches(big, big[:-1] + "1")
    assert functional_output_matches(f"[{big}, 2.0, true]", f"[{big}, 2, 1]")  # 2 == 2.0, True == 1 as in Python
    assert not functional_output_matches(f"[{big}]", f"[{big}.5]")


def _functional_problem(question_id, fn_name, cases):
    public = [{"input": i, "output": o, "testtype": "functional"} for i, o in cases]
    return {
        "question_title": question_id,
        "question_content": "Return the answer.",
        "platform": "leetcode",
        "question_id": question_id,
        "contest_id": "c",
        "contest_date": "2024-01-01T00:00:00",
        "starter_code": f"class Solution:\n    def {fn_name}(self, n: int):\n        ",
        "difficulty": "easy",
        "public_test_cases": json.dumps(public),
        "private_test_cases": "",
        "metadata": json.dumps({"func_name": fn_name}),
    }


@pytest.fixture(scope="module")
def exact_rows(tmp_path_factory):
    import sys

    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        power = str(2**20000)  # 6021 digits
    finally:
        sys.set_int_max_str_digits(limit)
    problems = [
        _functional_problem("half", "half", [("5", "2.5"), ("4", "2"), ("7", "3.5")]),
        _functional_problem("tenth", "tenth", [("1", "0.1"), ("5", "0.5")]),
        _functional_problem("power", "power", [("20000", power), ("3", "8")]),
    ]
    path = tmp_path_factory.mktemp("exact") / "rows.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    env = envs.make("livecode", source=str(path), time_limit=5.0)
    return env, {row["question_id"]: row for row in env.dataset("test")}


@pytest.mark.parametrize(
    "question_id, body, passes",
    [
        ("half", "from fractions import Fraction\n        return Fraction(n, 2)", True),
        ("half", "from decimal import Decimal\n        return Decimal(n) / 2", True),
        ("half", "return n / 2", True),
        ("half", "from fractions import Fraction\n        return Fraction(n, 3)", False),
        # Decimal('0.1') is not the float 0.1 (Python compares them exactly, and so does LiveCodeBench)
        ("tenth", "from decimal import Decimal\n        return Decimal(n) / 10", False),
        ("tenth", "return n / 10", True),
        ("power", "return 2 ** n", True),
        ("power", "return 2 ** n + 1", False),
    ],
)
def test_fractions_decimals_and_big_integers_are_judged_as_in_livecodebench(exact_rows, question_id, body, passes):
    env, rows = exact_rows
    row = rows[question_id]
    score = env.score(fenced(row["starter_code"] + body), row)
    assert score.success is passes, score.feedback


def test_multi_turn_feedback_turns_show_public_tests_and_never_a_hidden_one(rows):
    from rlexp import models
    from rlexp.episodes import play

    env = envs.make("livecode", time_limit=2.0, max_attempts=3)
    row = row_of(rows, "test", "rlexp-sum-array")
    tests, visible = env.tests_for(row)
    lookup = {t["input"]: t["output"] for t in tests[:visible]}
    attempts = [f"import sys\nprint({lookup!r}.get(sys.stdin.read(), '0').strip())", "print('no')", "print('still no')"]
    tokenizer = models.byte_tokenizer()

    def scripted(sequences):
        text = fenced(attempts[scripted.calls])
        scripted.calls += 1
        return [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]], None

    scripted.calls = 0
    (episode,) = play(env, tokenizer, [row], [[0]], scripted)
    feedback = [m["content"] for m in episode.messages[len(row["prompt"]) :] if m["role"] == "user"]
    assert episode.attempts == 3 and len(feedback) == 2
    assert feedback[0].startswith("Wrong Answer on a hidden test")  # public tests passed: the verdict alone
    assert "Wrong Answer" in feedback[1] and any(t["input"].strip() in feedback[1] for t in tests[:visible])
    for hidden in tests[visible:]:
        assert all(hidden["input"].strip() not in text for text in feedback)
