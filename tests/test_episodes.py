"""Multi-turn episodes (rlexp/episodes.py): the transcript in the authors' format, the token-level loss mask, the
returns, and multi-turn evaluation against a hand count."""

from types import SimpleNamespace

import pytest

from rlexp import envs, models
from rlexp.envs.base import Score
from rlexp.episodes import Episode, feedback_turn_ids, play
from rlexp.evaluate import episode_summary

TOKENIZER = models.byte_tokenizer()
EOS = TOKENIZER.eos_token_id
PROMPT = "Make 24 from the cards."
ROW = {"prompt": [{"role": "user", "content": PROMPT}], "cards": ["4", "3", "2", "K"], "values": [4, 3, 2, 10], "target": 24}


def answer(formula: str) -> str:
    return '{"cards": ["4", "3", "2", "K"], "number": [4, 3, 2, 10], "formula": "' + formula + '"}'


def ids(text: str) -> list[int]:
    return TOKENIZER(text, add_special_tokens=False)["input_ids"]


class Scripted:
    """A generator that answers each call with the next scripted text (then the end-of-turn token), and counts calls."""

    def __init__(self, texts, end=True):
        self.texts, self.end, self.calls, self.seen = list(texts), end, 0, []

    def __call__(self, sequences):
        assert len(sequences) == 1
        self.seen.append(list(sequences[0]))
        text = self.texts[self.calls]
        self.calls += 1
        return [ids(text) + ([EOS] if self.end else [])], None


def play_one(texts, max_attempts=5, end=True, **knobs):
    env = envs.make("generalpoints", max_attempts=max_attempts, **knobs)
    prompt_ids = ids(TOKENIZER.apply_chat_template(ROW["prompt"], add_generation_prompt=True, tokenize=False))
    model = Scripted(texts, end)
    (episode,) = play(env, TOKENIZER, [ROW], [prompt_ids], model)
    return episode, model, prompt_ids


WRONG_1, WRONG_2, RIGHT = answer("4*3*2"), answer("4*3+2+5"), answer("4*3+2+10")
FEEDBACK_1 = "You failed this trial because you didn't use numbers: [10]."
FEEDBACK_2 = "You failed this trial because you used invalid numbers: [5], you didn't use numbers: [10]."


def test_right_first_time_is_one_attempt_and_one_assistant_turn():
    episode, model, _ = play_one([RIGHT, WRONG_1])
    assert model.calls == 1 and episode.attempts == 1 and episode.solved
    assert episode.messages == [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": RIGHT}]
    assert [s.reward for s in episode.scores] == [5]


def test_right_on_the_third_attempt_gives_the_authors_transcript():
    episode, model, _ = play_one([WRONG_1, WRONG_2, RIGHT, WRONG_1])
    assert model.calls == 3 and episode.solved and episode.attempts == 3
    assert episode.messages == [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": WRONG_1},
        {"role": "user", "content": FEEDBACK_1},
        {"role": "assistant", "content": WRONG_2},
        {"role": "user", "content": FEEDBACK_2},
        {"role": "assistant", "content": RIGHT},
    ]
    # each attempt rewarded with the paper's values; penalties within one attempt add up
    assert [s.reward for s in episode.scores] == [-2, -4, 5]


def test_never_right_stops_after_five_attempts_with_no_sixth_call():
    episode, model, _ = play_one([WRONG_1] * 6)
    assert model.calls == 5 and episode.attempts == 5 and not episode.solved
    assert len(episode.messages) == 1 + 5 + 4 and episode.messages[-1]["role"] == "assistant"
    assert [m["content"] for m in episode.messages[2::2]] == [FEEDBACK_1] * 4


def test_the_loss_mask_covers_exactly_the_models_own_tokens():
    episode, model, prompt_ids = play_one([WRONG_1, WRONG_2, RIGHT])
    bridge_1 = ids(f"\n<|im_start|>user\n{FEEDBACK_1}<|im_end|>\n<|im_start|>assistant\n")
    bridge_2 = ids(f"\n<|im_start|>user\n{FEEDBACK_2}<|im_end|>\n<|im_start|>assistant\n")
    turns = [(ids(WRONG_1) + [EOS], 1), (bridge_1, 0), (ids(WRONG_2) + [EOS], 1), (bridge_2, 0), (ids(RIGHT) + [EOS], 1)]
    assert episode.prompt_ids == prompt_ids
    assert episode.completion_ids == [t for part, _ in turns for t in part]
    assert episode.env_mask == [m for part, m in turns for _ in part]
    # the model saw, before each attempt, exactly the conversation so far rendered by the chat template
    for attempt, seen in enumerate(model.seen):
        text = TOKENIZER.apply_chat_template(episode.messages[: 1 + 2 * attempt], add_generation_prompt=True, tokenize=False)
        assert seen == ids(text)


def test_a_truncated_attempt_has_its_turn_closed_by_the_template_not_by_the_model():
    episode, _, _ = play_one([WRONG_1, RIGHT], end=False)
    first = len(ids(WRONG_1))
    assert episode.completion_ids[first] == EOS and episode.env_mask[first] == 0
    assert sum(episode.env_mask) == len(ids(WRONG_1)) + len(ids(RIGHT))


def test_feedback_turn_ids_renders_what_the_chat_template_renders():
    assert (
        TOKENIZER.decode(feedback_turn_ids(TOKENIZER, "try again"))
        == "\n<|im_start|>user\ntry again<|im_end|>\n<|im_start|>assistant\n"
    )


def test_episode_returns_sum_discounted_and_final():
    episode, _, _ = play_one([WRONG_1, WRONG_2, RIGHT])
    assert episode.episode_return("sum") == -2 - 4 + 5
    assert episode.episode_return("sum", gamma=0.5) == pytest.approx(-2 - 0.5 * 4 + 0.25 * 5)
    assert episode.episode_return("final") == 1.0
    never, _, _ = play_one([WRONG_1] * 5)
    assert never.episode_return("final") == 0.0 and never.episode_return() == -10
    broken = Episode(ROW, [], [], scores=[Score(None, False, "")])
    assert broken.episode_return() is None


def test_an_attempt_without_feedback_ends_its_episode():
    class Silent(envs.env_class("generalpoints")):
        def score(self, completion, row):
            return Score(0.0, False, "")

    model = Scripted([WRONG_1] * 3)
    (episode,) = play(Silent(name="silent", max_attempts=3), TOKENIZER, [ROW], [ids("p")], model)
    assert model.calls == 1 and episode.attempts == 1


def test_max_attempts_must_be_a_positive_whole_number():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_attempts"):
            envs.make("generalpoints", max_attempts=bad)


# -- multi-turn evaluation, against a hand count ------------------------------------------------------------------------


def scripted_episode(*outcomes: str) -> Episode:
    """An episode whose attempts had these categories ("ok" is a success)."""
    scores = [Score(5.0 if o == "ok" else -1.0, o == "ok", "" if o == "ok" else "no", {"category": o}) for o in outcomes]
    return Episode(ROW, [], [], scores=scores)


def test_multi_turn_evaluation_counts_by_hand():
    per_row = [
        [scripted_episode("ok"), scripted_episode("bad", "bad", "ok")],  # both solved, one on the first try
        [scripted_episode("bad", "bad", "bad"), scripted_episode("bad", "ok")],  # one solved
    ]
    metrics = episode_summary(per_row, SimpleNamespace(num_samples=2, k=[1, 2]))
    assert metrics["success"] == pytest.approx(3 / 4)  # solved within the attempts
    assert metrics["first_try_success"] == pytest.approx(1 / 4)
    assert metrics["mean_attempts"] == pytest.approx((1 + 3 + 3 + 2) / 4)
    assert metrics["pass@1"] == pytest.approx(3 / 4) and metrics["pass@2"] == pytest.approx(1.0)
    assert metrics["mean_reward"] == pytest.approx((5 + 3 + -3 + 4) / 4)  # episode returns
    # category rates are over the 9 attempts
    assert metrics["category/ok"] == pytest.approx(3 / 9) and metrics["category/bad"] == pytest.approx(6 / 9)


def test_multi_turn_evaluation_runs_the_tiny_model(tmp_path):
    from rlexp.evaluate import evaluate
    from rlexp.schema import ModelConfig

    model = models.build_tiny(ModelConfig(), TOKENIZER)
    env = envs.make("generalpoints", max_attempts=3, num_cards=2, target=5, eval_size=3)
    cfg = SimpleNamespace(splits=["id"], num_prompts=3, num_samples=2, k=[1], temperature=1.0, max_new_tokens=8, batch_size=4)
    metrics = evaluate(model, TOKENIZER, env, cfg)["id"]
    # an untrained model never solves it: every episode used its three attempts
    assert metrics["mean_attempts"] == 3 and metrics["success"] == 0 and metrics["n_prompts"] == 3


def test_the_results_table_says_success_is_within_the_attempts():
    from rlexp.worker import results_table

    metrics = {"success": 0.5, "success_se": 0.1, "pass@1": 0.5, "mean_reward": -3.0, "n_prompts": 4, "n_samples": 1}
    table = results_table({"grpo": {"id": {**metrics, "first_try_success": 0.25}}})
    assert "episodes solved within their attempts" in table and "id 1st try" in table and "0.250" in table
    assert "1st try" not in results_table({"grpo": {"id": metrics}})


def test_the_results_table_keeps_long_split_names_apart():
    from rlexp.worker import results_table

    metrics = {"success": 0.5, "success_se": 0.1, "pass@1": 0.5, "mean_reward": -3.0, "n_prompts": 4, "n_samples": 1}
    head, _, row = results_table({"sft": {"id": metrics, "visual_ood": metrics}}).splitlines()[1:]
    assert " visual_ood success" in head and len(head) == len(row)


def test_sampling_log_probs_line_up_with_the_tokens_and_are_zero_on_feedback_turns():
    env = envs.make("generalpoints", max_attempts=2)
    texts = iter([WRONG_1, RIGHT])

    def with_logprobs(sequences):
        new = ids(next(texts)) + [EOS]
        return [new], [[-0.5] * len(new)]

    (episode,) = play(env, TOKENIZER, [ROW], [ids("p")], with_logprobs)
    assert len(episode.logprobs) == len(episode.completion_ids) == len(episode.env_mask)
    assert all((lp == -0.5) == bool(m) for lp, m in zip(episode.logprobs, episode.env_mask))


def test_each_attempt_gets_its_own_episodes_image_and_every_process_generates_as_many():
    env = envs.make("generalpoints", max_attempts=3)
    prompt_ids = ids(TOKENIZER.apply_chat_template(ROW["prompt"], add_generation_prompt=True, tokenize=False))
    # two episodes with the same prompt ids and different pictures; another process has 3 episodes open in round 1,
    # 2 in round 2, then none
    others, calls = [3, 2, 0], []

    def generate(sequences, images):
        calls.append((len(sequences), [own for own, _ in images]))
        return [ids(WRONG_1 if len(calls) == 1 else RIGHT) + [EOS] for _ in sequences], None

    played = play(env, TOKENIZER, [ROW, ROW], [prompt_ids] * 2, generate, images=[(["red"], {}), (["black"], {})],
                  widest=lambda open_here: max(open_here, others.pop(0)))  # fmt: skip
    # round 1: both wrong, padded to 3 with a copy of the first; round 2: both right, padded to 2 (no padding); round
    # 3: none open here or elsewhere, no call
    assert calls == [(3, [["red"], ["black"], ["red"]]), (2, [["red"], ["black"]])]
    assert [e.attempts for e in played] == [2, 2] and all(e.solved for e in played)


def test_a_process_with_no_episode_open_still_generates_while_another_has():
    env = envs.make("generalpoints", max_attempts=3)
    prompt_ids = ids(TOKENIZER.apply_chat_template(ROW["prompt"], add_generation_prompt=True, tokenize=False))
    others, sizes = [1, 2, 1], []

    def generate(sequences):
        sizes.append(len(sequences))
        return [ids(RIGHT) + [EOS] for _ in sequences], None

    (episode,) = play(env, TOKENIZER, [ROW], [prompt_ids], generate, widest=lambda open_here: max(open_here, others.pop(0)))
    assert sizes == [1, 2, 1] and episode.attempts == 1 and episode.solved
