"""env=math: generators, gold normalisation, extraction, bounded verification, hostile input."""

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from rlexp import envs, evaluate
from rlexp.envs import math as math_env
from rlexp.envs.math import FORMAT_FEEDBACK, WRONG_FEEDBACK, BoundedPool, extract_boxed, normalise_hub_row, too_costly
from rlexp.errors import ConfigError
from rlexp.rewards import EnvReward

from math_pool_targets import crash, crash_on_start, describe_worker, slow_echo  # isort: skip - tests/ is on the path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env():
    e = envs.make("math", train_size=70, eval_size=35, timeout_s=8.0)
    yield e
    e.pool.close()


@pytest.fixture(scope="module")
def fixture_env():
    e = envs.make("math", source=str(math_env.FIXTURE), timeout_s=8.0)
    yield e
    e.pool.close()


# -- data ------------------------------------------------------------------------------------------------------------


def test_procedural_problems_are_pure_functions_of_seed_difficulty_kind():
    for kind in math_env.KINDS:
        for difficulty in (1, 3, 5):
            a = math_env.procedural_problem(7, difficulty, kind)
            assert a == math_env.procedural_problem(7, difficulty, kind)
            assert a["solution"].endswith(f"\\boxed{{{a['answer']}}}$.")
    assert math_env.procedural_problem(1, 2, "arithmetic") != math_env.procedural_problem(2, 2, "arithmetic")


def test_rows_wrap_the_gold_and_cover_every_kind(env):
    rows = list(env.dataset("train"))
    assert len(rows) == 70 and {r["subject"] for r in rows} == set(math_env.KINDS)
    for r in rows:
        assert r["solution"] == f"${r['gold_raw']}$"
        assert r["prompt"][0]["content"].endswith("Please reason step by step, and put your final answer within \\boxed{}.")
    train_ids = {r["id"] for r in rows}
    assert not train_ids & {r["id"] for r in env.dataset("test")}


def test_knobs_select_kinds_and_difficulty():
    e = envs.make("math", kinds=["linear"], difficulty=5, train_size=5)
    rows = list(e.dataset("train"))
    assert {r["subject"] for r in rows} == {"linear"} and {r["level"] for r in rows} == {"Level 5"}
    assert e.knobs()["source"] == "procedural" and e.dataset("train")[0]["source"] == "procedural"


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"source": "mmlu"}, "source must be"),
        ({"kinds": ["calculus"]}, "kinds must be"),
        ({"difficulty": 9}, "difficulty"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_knobs_are_one_clear_error(knobs, message):
    with pytest.raises(ValueError, match=message):
        envs.make("math", **knobs)


def test_the_old_knob_name_dataset_points_to_source():
    with pytest.raises(TypeError, match="knob dataset is now source"):
        envs.make("math", dataset="gsm8k")
    from hydra import compose, initialize_config_dir

    from rlexp.__main__ import CONF_DIR, describe
    from rlexp.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"), pytest.raises(Exception) as info:
        compose(config_name="config", overrides=["env=math", "env.dataset=gsm8k"])
    assert describe(info.value) == "unknown key 'env.dataset': env has no 'dataset'; it is now env.source"


def test_hub_rows_are_normalised_per_dataset():
    gsm = normalise_hub_row("gsm8k", {"question": "Q?", "answer": "3 * 4 = <<3*4=12>>12 apples\n#### 1,012"})
    assert gsm["answer"] == "1012" and "<<" not in gsm["solution"] and gsm["solution"].endswith("\\boxed{1012}$.")
    math_row = normalise_hub_row(
        "math",
        {
            "problem": "P",
            "solution": "So $\\boxed{\\frac{1}{2}}$ and \\boxed{\\left\\{1,2\\right\\}}.",
            "level": "Level 5",
            "type": "Algebra",
        },
    )
    assert math_row["answer"] == "\\left\\{1,2\\right\\}" and math_row["level"] == "Level 5" and math_row["subject"] == "Algebra"
    assert normalise_hub_row("amc", {"problem": "P", "answer": 70.0})["answer"] == "70"
    assert normalise_hub_row("amc", {"problem": "P", "answer": 2.5})["answer"] == "2.5"
    assert normalise_hub_row("aime25", {"question": "P", "answer": "204"})["problem"] == "P"
    assert normalise_hub_row("math500", {"problem": "P", "answer": "3", "level": 4})["level"] == "Level 4"


def test_hub_failure_is_one_clear_line(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("offline mode is enabled\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match="env.source=gsm8k: could not load openai/gsm8k .* use env.source=procedural") as info:
        envs.make("math", source="gsm8k").dataset("test")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="evaluation only"):
        envs.make("math", source="aime24").dataset("train")


def test_hub_loader_asks_for_every_math_subject(monkeypatch):
    asked = []

    def fake_load(repo, config, split):
        asked.append((repo, config, split))
        return [{"problem": f"{config} problem", "solution": "$\\boxed{1}$", "level": "Level 1", "type": config}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = list(envs.make("math", source="math").dataset("train"))
    assert [c for _, c, _ in asked] == list(math_env.MATH_SUBJECTS) and {s for _, _, s in asked} == {"train"}
    assert len(rows) == 7 and all(r["solution"] == "$1$" for r in rows)


# rows laid out as agentica-org/DeepScaleR-Preview-Dataset's one split, train: problem, answer (bare LaTeX), solution
DEEPSCALER_ROWS = [
    {"problem": "Halve 1.", "answer": "\\frac{1}{2}", "solution": "Half of 1 is $\\boxed{\\frac{1}{2}}$."},
    {"problem": "Add 2 and 2.", "answer": "4", "solution": ""},
    {"problem": "A problem the upload gives no answer for.", "answer": "", "solution": "It is $\\boxed{3}$."},
]


def test_deepscaler_trains_on_its_one_split_and_leaves_out_rows_without_an_answer(monkeypatch, caplog):
    asked = []

    def fake_load(repo, config, split):
        asked.append((repo, config, split))
        return datasets.Dataset.from_list(DEEPSCALER_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    e = envs.make("math", source="deepscaler", timeout_s=8.0)
    rows = list(e.dataset("train"))
    assert asked == [("agentica-org/DeepScaleR-Preview-Dataset", None, "train")]
    assert [r["solution"] for r in rows] == ["$\\frac{1}{2}$", "$4$"] and {r["source"] for r in rows} == {"deepscaler"}
    assert "left out 1 of 3 rows without a gold answer" in caplog.text
    # only a worked solution with a boxed answer is a demonstration
    assert [m[-1]["content"] for m in e.demonstrations("train")["messages"]] == [DEEPSCALER_ROWS[0]["solution"]]
    try:
        scores = e.score_batch(["So it is \\boxed{0.5}.", "\\boxed{5}"], rows)
    finally:
        e.pool.close()
    assert [s.success for s in scores] == [True, False]
    assert e.eval_splits() == ["math500"]  # it has no test split of its own
    with pytest.raises(ConfigError, match="deepscaler has no test split: evaluate on others, eval.splits=.* math500"):
        e.dataset("test")


def test_an_evaluation_split_can_name_another_hub_source(monkeypatch):
    asked = []

    def fake_load(repo, config, split):
        asked.append((repo, split))
        return datasets.Dataset.from_list([{"problem": f"{repo} problem", "answer": 7.0, "id": 1}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    e = envs.make("math", source="deepscaler")
    for split, repo, hub_split in [("amc", "AI-MO/aimo-validation-amc", "train"), ("math500", "HuggingFaceH4/MATH-500", "test")]:
        (row,) = e.dataset(split)
        assert asked[-1] == (repo, hub_split) and row["source"] == split and row["solution"] == "$7$"
    assert len(envs.make("math", train_size=3, eval_size=2).dataset("test")) == 2  # `test` is still the source's own
    with pytest.raises(ValueError, match="a hub source's evaluation set"):
        e.dataset("aime2099")


# -- extraction ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, boxed, why",
    [
        ("The answer is \\boxed{72}.", "72", ""),
        ("\\boxed{7}. Check: \\boxed{5}", "5", ""),
        ("<think>\\boxed{5}</think> so \\boxed{7}", "7", ""),
        ("<think>it is \\boxed{5}</think> I am done.", None, "no_boxed"),
        ("<think>never closed \\boxed{5}", None, "unclosed_think"),
        ("\\boxed{}", None, "empty_boxed"),
        ("\\boxed{\\frac{1}{2}", None, "unbalanced_boxed"),
        ("\\boxed{" + "{" * 100, None, "too_deep"),
        ("\\boxed{1}" + "{" * 10000, None, "no_boxed"),  # only the last 4000 characters are read
        ("\\boxed 5", "5", ""),
        ("\\fbox{\\frac{1}{2}} done", "\\frac{1}{2}", ""),
        ("", None, "no_boxed"),
        ("   \n\t ", None, "no_boxed"),
    ],
)
def test_extract_boxed(text, boxed, why):
    assert extract_boxed(text) == (boxed, why)


@pytest.mark.parametrize(
    "answer",
    [
        "9^{9^{9^{9}}}",
        "10^{10^{10}}",
        "9^9^9",
        "10**10**10",
        "1" * 300,
        "(" * 30 + "1" + ")" * 30,
        "99999999999^99999999999",
        "(10^{100})!",
    ],
)
def test_costly_answers_are_compared_as_strings(answer):
    assert too_costly(answer)


@pytest.mark.parametrize(
    "answer", ["\\frac{\\sqrt{2}}{2}", "2^{10}", "2^2\\cdot 3^2\\cdot 5^2", "x^{4}-2x^{3}+x^{2}", "e^{i\\pi}", "5!", "2^{100}"]
)
def test_ordinary_powers_still_get_the_symbolic_check(answer):
    assert not too_costly(answer)


def test_equivalent_forms_with_powers_are_correct(env):
    row = dict(env.dataset("test")[0], solution="$900$", gold_raw="900")
    assert env.score("\\boxed{2^2\\cdot 3^2\\cdot 5^2}", row).reward == 1.0


# -- scoring ---------------------------------------------------------------------------------------------------------


def test_reference_solutions_score_one(env, fixture_env):
    for e in (env, fixture_env):
        rows = list(e.dataset("test"))
        scores = e.score_batch([r["reference_solution"] for r in rows], rows)
        assert [s.reward for s in scores] == [1.0] * len(rows)
        assert all(s.success and s.feedback == "" for s in scores)
        assert e.unparseable_golds == 0


def test_a_bare_gold_would_be_misread_which_is_why_golds_are_wrapped():
    # run in this (main) thread: math-verify's alarms work here
    assert math_env.check_answer("10\\sqrt{2}", "10")["reward"] == 1.0  # parsed as 10: the pitfall
    assert math_env.check_answer("$10\\sqrt{2}$", "10")["reward"] == 0.0
    assert math_env.check_answer("(1,2)", "(1,2)")["reward"] is None  # a bare tuple gold does not parse at all
    assert math_env.check_answer("$(1,2)$", "(1,2)")["reward"] == 1.0


def test_fixture_golds_need_the_dollar_wrapping_and_accept_equivalent_forms(fixture_env):
    rows = list(fixture_env.dataset("test"))
    answers = [
        "\\boxed{(2,1)}",
        "\\boxed{(3, \\pi/2)}",
        "\\boxed{\\{2,-1\\}}",
        "\\boxed{\\sqrt{200}}",
        "\\boxed{0.75}",
        "\\boxed{C}",
        "\\boxed{120}",
        "\\boxed{-7.0}",
        "\\boxed{\\sqrt{2}/2}",
        "\\boxed{216}",
    ]
    rewards = [s.reward for s in fixture_env.score_batch(answers, rows)]
    assert rewards == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_feedback_strings(env):
    row = env.dataset("test")[0]
    assert env.score("no box here", row).feedback == FORMAT_FEEDBACK
    wrong = env.score("\\boxed{123456789}", row)
    assert (wrong.reward, wrong.feedback, wrong.info["category"]) == (0.0, WRONG_FEEDBACK, "wrong")
    assert row["gold_raw"] not in wrong.feedback


def test_an_answer_that_does_not_parse_gets_its_own_feedback(env):
    row = env.dataset("test")[0]
    score = env.score("\\boxed{\\text{}}", row)
    assert score.info["category"] == "unparsable" and score.feedback == math_env.UNPARSABLE_FEEDBACK and score.reward == 0.0


def test_unparseable_gold_gives_none_and_is_counted(caplog):
    e = envs.make("math", train_size=1, eval_size=1)
    row = dict(e.dataset("test")[0], solution="$\\$", gold_raw="\\")
    with caplog.at_level("WARNING"):
        score = e.score("\\boxed{3}", row)
    assert score.reward is None and score.info["category"] == "gold_unparseable" and e.unparseable_golds == 1
    assert "does not parse" in caplog.text
    e.pool.close()


HOSTILE = [
    "",
    "   ",
    "\\boxed{}",
    "\\boxed{\\frac{1}{2}",
    "\\boxed{7}. Check: \\boxed{5}",
    "<think>\\boxed{5}",
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{10^{10^{10}}}",
    "\\boxed{10**10**10}",
    "\\boxed{" + "(" * 500 + "1" + ")" * 500 + "}",
    "\\boxed{" + "{" * 10000,
    "\\boxed{" + "7" * 100000 + "}",
    "\\boxed{\\infty}",
    "\\boxed{NaN}",
    "\\boxed{\\text{}}",
    "\\boxed{\\text{(C)}}",
    "\\boxed{\\$1,000}",
    "\\boxed{50\\%}",
    "\\boxed{3} and then a long explanation " * 50,
    "\\boxed{\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}}",
    "\\boxed{\\dfrac{1}{2}}",
    "\\boxed{\\tfrac{1}{2}}",
    "\\boxed{\\left. x \\right|}",
    "\\boxed{\\mathrm{m}}",
    "x" * 1_000_000 + "\\boxed{1}",
    "\\boxed{1\x00}",
    "\\boxed{\ud800}",
    "\\boxed{" + "\\frac{1}{" * 1000 + "2" + "}" * 1000 + "}",
    "\\boxed{１２}",
    "\\boxed{x=2}",
    "<think>\\boxed{1}</think>\\boxed{2}",
    "\\boxed{2^{2^{2}}}",
]


def test_hostile_completions_each_return_a_score_quickly(env):
    row = env.dataset("test")[0]
    for text in HOSTILE:
        start = time.monotonic()
        score = env.score(text, row)
        # killed at timeout_s: without the kill these run for minutes; the margin is for a loaded machine
        assert time.monotonic() - start < env.timeout_s + 30, text[:60]
        assert score.reward in (0.0, 1.0) and isinstance(score.feedback, str), text[:60]


# a check that sleeps this long only ends by being killed: a "timeout" result proves the kill, with no
# clock in the test; the pool's timeout leaves a loaded machine seconds for the quick checks
HUNG_S, POOL_TIMEOUT_S = 3600, 5.0


def test_a_hung_check_is_killed_and_its_worker_replaced():
    pool = BoundedPool(slow_echo, workers=1, timeout_s=POOL_TIMEOUT_S)
    assert pool.call(0, "first") == ("ok", "first")
    assert pool.call(HUNG_S, "hung") == ("timeout", None)
    assert pool.call(0, "after") == ("ok", "after")  # a fresh worker took the hung one's place
    pool.close()


def test_scoring_off_the_main_thread_keeps_its_bound(env):
    row = env.dataset("test")[0]
    out = []
    thread = threading.Thread(target=lambda: out.append(env.score(row["reference_solution"], row)))
    thread.start()
    thread.join()
    assert out and out[0].reward == 1.0
    pool = BoundedPool(slow_echo, workers=1, timeout_s=POOL_TIMEOUT_S)
    results = []
    thread = threading.Thread(target=lambda: results.append(pool.call(HUNG_S, "hung")))
    thread.start()
    thread.join()
    assert results == [("timeout", None)]
    pool.close()


def test_a_crashed_worker_is_replaced_and_a_broken_setup_says_why():
    pool = BoundedPool(crash, workers=1, timeout_s=5)
    assert pool.call(True) == ("crashed", None)
    assert pool.call(False) == ("ok", "fine") and pool.started == 1
    pool.close()
    broken = BoundedPool(slow_echo, workers=1, timeout_s=5, warm=crash_on_start)
    status, why = broken.call(0, "x")
    assert status == "unavailable" and "SystemExit: 4" in why and broken.started == 0 and not broken.alive
    failure = broken.start_failure
    assert broken.call(0, "x") == ("unavailable", why) and broken.start_failure is failure  # no new start for a while
    missing = BoundedPool(slow_echo, workers=1, timeout_s=5)
    missing.command[0] = "/nonexistent/python"
    status, why = missing.call(0, "x")
    assert status == "unavailable" and "could not be run (FileNotFoundError" in why


def test_workers_run_our_module_with_one_thread_each():
    pool = BoundedPool(describe_worker, workers=1, timeout_s=30)
    status, worker = pool.call()
    assert status == "ok" and worker["main"] == "rlexp.envs.math_worker"  # not the caller's __main__
    assert worker["threads"] == dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")
    pool.close()
    with pytest.raises(ValueError, match="__main__"):
        BoundedPool(SimpleNamespace(__module__="__main__", __qualname__="f"), workers=1, timeout_s=1)


def test_workers_that_cannot_start_give_reward_none_and_one_log_line(caplog):
    e = envs.make("math", train_size=1, eval_size=1)
    e._pool = BoundedPool(math_env.check_answer, workers=1, timeout_s=5, warm=crash_on_start)
    row = e.dataset("test")[0]
    with caplog.at_level("WARNING"):
        scores = [e.score(row["reference_solution"], row), *e.score_batch(["\\boxed{1}", "no box"], [row, row])]
    assert [s.reward for s in scores] == [None, None, 0.0]
    assert scores[0].info["category"] == "verifier_unavailable" and "SystemExit: 4" in scores[0].info["reason"]
    assert scores[0].feedback == "" and not scores[0].success
    assert [r.levelname for r in caplog.records] == ["ERROR"]  # once, not once per answer
    assert "SystemExit: 4; answers get reward None until a worker starts" in caplog.text


# -- callers: each runs in a subprocess of its own, as a user would run it ------------------------------------------

# top-level code with no `if __name__ == "__main__":` guard; MARKER gets one line each time it runs
CALLER_SETUP = """
import json, os, sys, threading
open(MARKER, "a").write(f"{os.getpid()}\\n")
from rlexp import envs
env = envs.make("math", train_size=1, eval_size=3, workers=1, timeout_s=60)
rows = list(env.dataset("test"))
texts = [r["reference_solution"] for r in rows] + ["\\\\boxed{123456789}"]
score_all = lambda: [env.score(t, rows[min(i, len(rows) - 1)]).reward for i, t in enumerate(texts)]
"""
CALLERS = {
    "script": "print('RESULT', json.dumps(score_all()))",
    "interactive": "print('RESULT', json.dumps(score_all()))",
    "stdin": "print('RESULT', json.dumps(score_all()))",
    "thread": (
        "out = []\n"
        "worker = threading.Thread(target=lambda: out.append(score_all())); worker.start(); worker.join()\n"
        "print('RESULT', json.dumps(out[0]))"
    ),
    # the parent's pool has a worker when it forks; the child must start its own, and the parent keep its own
    "fork": (
        "before = score_all()\n"
        "reader, writer = os.pipe(); child = os.fork()\n"
        "if child == 0: os.write(writer, json.dumps(score_all() if env.pool.started == 0 else 'inherited').encode()); os._exit(0)\n"
        "os.close(writer); in_child = json.loads(os.read(reader, 1000)); os.waitpid(child, 0)\n"
        "print('RESULT', json.dumps(before)); print('RESULT', json.dumps(in_child)); print('RESULT', json.dumps(score_all()))"
    ),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_every_kind_of_caller_gets_scores(caller, tmp_path):
    marker = tmp_path / "marker"
    code = f"MARKER = {str(marker)!r}\n{CALLER_SETUP}\n{CALLERS[caller]}\n"
    if caller in ("interactive", "stdin"):  # typed at the prompt, or piped to `python -`: no script file
        argv, stdin = [sys.executable, "-i" if caller == "interactive" else "-"], code
    else:
        (tmp_path / "caller.py").write_text(code)
        argv, stdin = [sys.executable, str(tmp_path / "caller.py")], None
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # the bound is for a hang only: a check takes a second
    done = subprocess.run(argv, input=stdin, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    results = [json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, done.stdout + done.stderr
    assert all(result == [1.0, 1.0, 1.0, 0.0] for result in results), done.stdout + done.stderr
    assert len(results) == (3 if caller == "fork" else 1)
    assert len(marker.read_text().split()) == 1  # the workers never ran the caller's code


def test_a_busy_worker_exits_when_its_caller_is_killed(tmp_path):
    caller = (
        f"import os, sys, threading, time\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from math_pool_targets import slow_echo\nfrom rlexp.envs.math import BoundedPool\n"
        "pool = BoundedPool(slow_echo, workers=1, timeout_s=600)\n"
        "assert pool.call(0, 'started') == ('ok', 'started')\n"
        "threading.Thread(target=pool.call, args=(600, 'busy'), daemon=True).start(); time.sleep(1)\n"
        "print(next(iter(pool.alive)).process.pid, flush=True); os._exit(0)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", caller], env=environment, capture_output=True, text=True, timeout=600)
    worker = int(done.stdout.split()[0])
    status = Path(f"/proc/{worker}/status")
    deadline = time.monotonic() + 120  # it checks once a second; the bound is for a worker that never exits
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not status.exists() or "zombie" in status.read_text()


def test_many_threads_at_once_share_the_workers():
    pool = BoundedPool(slow_echo, workers=2, timeout_s=5)
    assert pool.map([(0.01, i) for i in range(40)]) == [("ok", i) for i in range(40)]
    assert pool.started == 2
    pool.close()


def test_env_reward_and_pickling(env):
    reward = pickle.loads(pickle.dumps(EnvReward("math", train_size=3, eval_size=3)))
    e = envs.make("math", train_size=3, eval_size=3)
    rows = list(e.dataset("train"))
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    texts = [rows[0]["reference_solution"], "no box", "\\boxed{123456789}"]
    for completions in (texts, [[{"role": "assistant", "content": t}] for t in texts]):
        assert reward(prompts=[r["prompt"] for r in rows], completions=completions, **columns) == [1.0, 0.0, 0.0]
    assert pickle.loads(pickle.dumps(env)).knobs() == env.knobs()
    e.pool.close()


def test_evaluation_reports_per_source_level_and_kind(env, monkeypatch):
    rows = env.dataset("test")

    by_prompt = {json.dumps(r["prompt"]): r for r in rows}

    def fake_generate(model, tokenizer, prompts, num_samples, *args):
        chunk = [by_prompt[json.dumps(p)] for p in prompts]  # evaluation asks for a chunk of prompts at a time
        return [[r["reference_solution"] if r["subject"] == "linear" else "no box"] * num_samples for r in chunk]

    monkeypatch.setattr(evaluate, "generate", fake_generate)
    cfg = SimpleNamespace(splits=[], num_prompts=1000, num_samples=2, k=[1, 2], temperature=1.0, max_new_tokens=8, batch_size=8)
    metrics = evaluate.evaluate(None, None, env, cfg)["test"]
    assert metrics["linear/pass@1"] == 1.0 and metrics["word/pass@2"] == 0.0
    assert metrics["procedural/n_prompts"] == len(rows) and "Level 2/success" in metrics
    assert metrics["category/format"] == pytest.approx(1 - metrics["success"])
    assert json.dumps(metrics)
