"""algo=sdpo and mode=discover (arXiv 2601.20802)."""

import math

import pytest
import torch
from test_pear import tiny
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import selective_log_softmax

from rlexp import envs
from rlexp.algos.sdpo import FEEDBACK_TEMPLATE, REPROMPT_TEMPLATE, SDPO, SOLUTION_TEMPLATE, TRUNCATION_NOTICE
from rlexp.discover import (
    DiscoverConfig,
    DiscoveryReward,
    StopWhenFound,
    attempt_and_feedback_messages,
    discovery_at_k,
    first_success,
    multi_turn,
    multi_turn_prompt,
    table,
)
from rlexp.errors import ConfigError
from rlexp.evaluate import pass_at_k
from rlexp.rewards import EnvReward
from rlexp.trainers.sdpo import FeedbackSDPOConfig, FeedbackSDPOTrainer, distillation_per_token

V = 7
G = 4
MAX_LEN = 6
GAME = dict(num_cards=3, target=12, prompt_style="short", reward_mode="binary", train_size=4)


def logits(seed, shape=(2, 3, V)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


def per_token(student, teacher, mode="full_logits", topk=None, add_tail=False, alpha=1.0, clip=None, ids=None):
    ids = torch.zeros(student.shape[:2], dtype=torch.long) if ids is None else ids
    return distillation_per_token(
        student, teacher, ids, mode=mode, topk=topk, add_tail=add_tail, alpha=alpha, advantage_clip=clip
    )


# -- the divergences ----------------------------------------------------------------------------------------------


def test_divergence_endpoints_and_jsd():
    s, t = logits(0), logits(1)
    ls, lt = s.log_softmax(-1), t.log_softmax(-1)
    reverse = (ls.exp() * (ls - lt)).sum(-1)
    forward = (lt.exp() * (lt - ls)).sum(-1)
    m = (0.5 * ls.exp() + 0.5 * lt.exp()).log()
    jsd = 0.5 * (lt.exp() * (lt - m)).sum(-1) + 0.5 * (ls.exp() * (ls - m)).sum(-1)
    assert torch.allclose(per_token(s, t, alpha=1.0), reverse, atol=1e-6)
    assert torch.allclose(per_token(s, t, alpha=0.0), forward, atol=1e-6)
    assert torch.allclose(per_token(s, t, alpha=0.5), jsd, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("add_tail", [True, False])
def test_topk_with_k_equal_to_the_vocabulary_is_full_logits(alpha, add_tail):
    s, t = logits(2), logits(3)
    full = per_token(s, t, alpha=alpha)
    topk = per_token(s, t, mode="topk_logits", topk=V, add_tail=add_tail, alpha=alpha)
    assert torch.allclose(topk, full, atol=1e-5)
    assert not torch.allclose(per_token(s, t, mode="topk_logits", topk=2, add_tail=add_tail, alpha=alpha), full, atol=1e-3)


def test_top1_without_tail_is_zero_and_with_tail_is_the_binary_kl():
    s, t = logits(4), logits(5)
    assert torch.allclose(per_token(s, t, mode="topk_logits", topk=1), torch.zeros(2, 3), atol=1e-6)
    top = s.argmax(-1, keepdim=True)
    p = s.softmax(-1).gather(-1, top).squeeze(-1)
    q = t.softmax(-1).gather(-1, top).squeeze(-1)
    binary = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    assert torch.allclose(per_token(s, t, mode="topk_logits", topk=1, add_tail=True), binary, atol=1e-5)


def test_sampled_token_gradient_in_expectation_is_the_reverse_kl_gradient():
    z = logits(6, (V,)).requires_grad_(True)
    t = logits(7, (V,))
    kl = (z.log_softmax(-1).exp() * (z.log_softmax(-1) - t.log_softmax(-1))).sum()
    (exact,) = torch.autograd.grad(kl, z)
    probs = z.softmax(-1).detach()
    expected = torch.zeros(V)
    for y in range(V):  # the exact expectation over y ~ S of the surrogate's gradient
        loss = per_token(z.view(1, 1, V), t.view(1, 1, V), mode="sampled_token", ids=torch.tensor([[y]]))
        (g,) = torch.autograd.grad(loss.sum(), z)
        expected += probs[y] * g
    assert torch.allclose(expected, exact, atol=1e-5)


@pytest.mark.parametrize(
    "mode,topk,alpha",
    [("full_logits", None, 1.0), ("full_logits", None, 0.5), ("topk_logits", 3, 1.0), ("sampled_token", None, 1.0)],
)
def test_teacher_equal_to_student_gives_zero_loss_and_zero_gradient(mode, topk, alpha):
    z = logits(8).requires_grad_(True)
    loss = per_token(
        z, z.detach().clone(), mode=mode, topk=topk, add_tail=True, alpha=alpha, ids=torch.randint(0, V, (2, 3))
    ).sum()
    (g,) = torch.autograd.grad(loss, z)
    assert abs(loss.item()) < 1e-6 and g.abs().max() < 1e-6


def test_advantage_clip_bounds_the_per_token_advantage():
    z = logits(9, (1, 1, V)).requires_grad_(True)
    t = torch.full((1, 1, V), -30.0)
    t[..., 0] = 30.0  # a teacher far from the student: |log q - log pi| up to ~60
    ls = z.log_softmax(-1).detach()
    # unclipped (a huge bound), the surrogate's gradient is reverse KL's
    kl = (z.log_softmax(-1).exp() * (z.log_softmax(-1) - t.log_softmax(-1))).sum()
    (exact,) = torch.autograd.grad(kl, z)
    (loose,) = torch.autograd.grad(per_token(z, t, clip=1e9).sum(), z)
    assert torch.allclose(loose, exact, atol=1e-4)
    # clipped: d/dz_j = S_j (a_j - E_S[a]) with a = clip(log S - log T, +-5)
    (clipped,) = torch.autograd.grad(per_token(z, t, clip=5.0).sum(), z)
    a = (ls - t.log_softmax(-1)).clamp(-5, 5)
    assert (ls - t.log_softmax(-1)).abs().max() > 5 and a.abs().max() <= 5
    assert torch.allclose(clipped, ls.exp() * (a - (ls.exp() * a).sum(-1, keepdim=True)), atol=1e-6)
    # sampled token: the coefficient on d log pi(y) is the clipped log ratio
    (g,) = torch.autograd.grad(per_token(z, t, mode="sampled_token", clip=5.0, ids=torch.tensor([[3]])).sum(), z)
    onehot = torch.nn.functional.one_hot(torch.tensor(3), V).float()
    assert torch.allclose(g.view(-1), 5.0 * (onehot - ls.exp().view(-1)), atol=1e-5)


# -- the trainer --------------------------------------------------------------------------------------------------


def make_trainer(tmp_path, reward=None, **overrides):
    model, tokenizer = tiny()
    env = envs.make("generalpoints", **GAME)
    kwargs = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=G,
        num_generations=G,
        max_completion_length=MAX_LEN,
        distillation_mode="full_logits",
        include_environment_feedback=True,
        environment_feedback_only_without_solution=True,
        remove_thinking_from_demonstration=True,
        teacher_model_kind="base",
        max_prompt_length=None,
    )
    kwargs.update(overrides)
    trainer = FeedbackSDPOTrainer(
        model=model,
        reward_funcs=[reward or EnvReward("generalpoints", **GAME)],
        args=FeedbackSDPOConfig(**kwargs),
        train_dataset=env.dataset("train"),
        processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which these tests skip
    return trainer, env


def completion_tensors(tokenizer, texts):
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(map(len, ids))
    return {
        "completion_ids": torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i in ids]),
        "completion_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids]),
    }


def build(trainer, success, feedback, texts=None, prompt=None):
    """Teacher contexts for one group of G completions; returns (context, teacher prompt texts)."""
    tok = trainer.processing_class
    texts = texts or [f"answer {i}" for i in range(G)]
    prompt = prompt or [{"role": "user", "content": "Make 12 from 3 4 5."}]
    output = completion_tensors(tok, texts)
    trainer._rollout_success = torch.tensor(success, dtype=torch.float32)
    trainer._rollout_feedback = feedback
    context = trainer.teacher_context_builder.build(output, [prompt] * G, torch.zeros(G))
    width = output["completion_ids"].size(1)
    prompts = [
        tok.decode(ids[:-width][mask[:-width].bool()])
        for ids, mask in zip(context["teacher_input_ids"], context["teacher_attention_mask"])
    ]
    assert torch.equal(context["teacher_input_ids"][:, -width:], output["completion_ids"])
    return context, prompts


def test_a_success_learns_from_a_sibling_never_from_itself(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    context, prompts = build(trainer, [1, 0, 0, 0], [None] * G)
    assert context["self_distillation_mask"].tolist() == [0, 1, 1, 1]
    assert all("Correct solution:\n\nanswer 0" in p for p in prompts[1:])
    assert "Correct solution" not in prompts[0]
    # the completion table's columns (rlexp/tracking.py)
    assert trainer.rollout_columns == {"teacher_context": [False, True, True, True],
                                       "teacher_context_kind": ["", "solution", "solution", "solution"]}  # fmt: skip
    context, prompts = build(trainer, [1, 1, 0, 0], [None] * G)
    assert context["self_distillation_mask"].tolist() == [1, 1, 1, 1]
    assert "answer 1" in prompts[0] and "answer 0" not in prompts[0]
    assert all("Correct solution:\n\nanswer 0" in p for p in prompts[1:])
    trainer.args.dont_reprompt_on_self_success = False
    context, prompts = build(trainer, [1, 0, 0, 0], [None] * G)
    assert context["self_distillation_mask"].tolist() == [1, 1, 1, 1] and "answer 0" in prompts[0]
    assert trainer.rollout_columns["teacher_context_kind"] == ["solution"] * G


def test_feedback_goes_to_its_own_completion_and_blank_feedback_is_none(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    context, prompts = build(trainer, [0, 0, 0, 0], ["", "err", None, "  "])
    assert context["self_distillation_mask"].tolist() == [0, 1, 0, 0]
    assert "The following is feedback from your unsuccessful earlier attempt:\n\nerr" in prompts[1]
    assert all("feedback" not in p for i, p in enumerate(prompts) if i != 1)
    metrics = trainer.teacher_context_builder.last_metrics
    assert metrics["sdpo/context_fraction"] == 0.25 and metrics["sdpo/context_feedback_only"] == 1.0
    assert trainer.rollout_columns["teacher_context_kind"] == ["", "feedback_only", "", ""]


def test_feedback_only_without_a_solution(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    _, prompts = build(trainer, [0, 1, 0, 0], ["wrong move", None, None, None])
    assert "answer 1" in prompts[0] and "wrong move" not in prompts[0]
    trainer.args.environment_feedback_only_without_solution = False
    _, prompts = build(trainer, [0, 1, 0, 0], ["wrong move", None, None, None])
    assert "answer 1" in prompts[0] and "wrong move" in prompts[0]


def test_thinking_is_stripped_from_the_solution_and_the_student_attempt_is_never_shown(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    texts = ["<think>secret plan</think> 3*4", "own attempt B", "own attempt C", "own attempt D"]
    _, prompts = build(trainer, [1, 0, 0, 0], ["", "bad", "bad", "bad"], texts=texts)
    assert "3*4" in prompts[1] and "secret plan" not in prompts[1]
    assert all("own attempt" not in p for p in prompts)


def user_turn(trainer, content):
    return trainer.processing_class.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


QUESTION = "Make 12 from 3 4 5."  # build()'s prompt
SOLUTION = "\nCorrect solution:\n\n"
FEEDBACK = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
SOLVE = "\n\nCorrectly solve the original question."


@pytest.mark.parametrize("demo,shown", [
    ("<think>plan\nmore</think>\n\n  3*4 \n", "3*4 \n"),  # the block and the whitespace after it; the rest as it is
    ("  lead <think>a</think> x <think>b</think>\ny  ", "  lead x y  "),
    ("no thinking at all \n", "no thinking at all \n"),
    ("<think>never closed", "<think>never closed"),
])  # fmt: skip
def test_thinking_removal_deletes_each_block_and_the_whitespace_after_it_only(tmp_path, demo, shown):
    trainer, _ = make_trainer(tmp_path)
    _, prompts = build(trainer, [1, 0, 0, 0], [None] * G, texts=[demo, "b", "c", "d"])
    assert prompts[1] == user_turn(trainer, QUESTION + SOLUTION + shown + SOLVE)
    assert trainer.args.solution_template == SOLUTION_TEMPLATE and trainer.args.remove_thinking_from_demonstration
    trainer.args.remove_thinking_from_demonstration = False
    _, prompts = build(trainer, [1, 0, 0, 0], [None] * G, texts=[demo, "b", "c", "d"])
    assert prompts[1] == user_turn(trainer, QUESTION + SOLUTION + demo + SOLVE)


def test_templates_are_the_authors_as_their_yaml_loads_them(tmp_path):
    # lasgroup/SDPO, verl/trainer/config/actor/actor.yaml: `|-` block scalars, no trailing newlines
    assert REPROMPT_TEMPLATE == "{prompt}{solution}{feedback}" + SOLVE
    assert SOLUTION_TEMPLATE == SOLUTION + "{successful_previous_attempt}"
    assert FEEDBACK_TEMPLATE == FEEDBACK + "{feedback_raw}"
    algo, args = SDPO(), FeedbackSDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    for knob, value in (
        ("reprompt_template", REPROMPT_TEMPLATE),
        ("solution_template", SOLUTION_TEMPLATE),
        ("feedback_template", FEEDBACK_TEMPLATE),
        ("distillation_reduction", "row_mean"),
    ):
        assert getattr(algo, knob) == value and getattr(args, knob) == value, knob
    trainer, _ = make_trainer(tmp_path, environment_feedback_only_without_solution=False)
    _, prompts = build(trainer, [0, 1, 0, 0], ["wrong move", None, "  spaced out\n", None])
    assert prompts[0] == user_turn(trainer, QUESTION + SOLUTION + "answer 1" + FEEDBACK + "wrong move" + SOLVE)
    assert prompts[2] == user_turn(trainer, QUESTION + SOLUTION + "answer 1" + FEEDBACK + "  spaced out\n" + SOLVE)
    _, prompts = build(trainer, [0, 0, 0, 0], ["wrong move", None, None, None])
    assert prompts[0] == user_turn(trainer, QUESTION + FEEDBACK + "wrong move" + SOLVE)


def test_empty_feedback_and_no_sibling_leave_the_student_prompt_and_zero_loss(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    tok = trainer.processing_class
    prompt = [{"role": "user", "content": "Make 12 from 3 4 5."}]
    context, prompts = build(trainer, [0] * G, [""] * G, prompt=prompt)
    assert context["self_distillation_mask"].tolist() == [0] * G
    assert set(prompts) == {tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)}
    inputs = dict(build_inputs(trainer, mask=[0] * G))
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in trainer.model.parameters())


def test_reprompt_never_exceeds_max_reprompt_len_and_keeps_the_generation_prompt(tmp_path):
    trainer, _ = make_trainer(tmp_path, max_reprompt_len=40)
    context, prompts = build(trainer, [0] * G, ["x" * 500] * G)
    width = context["teacher_input_ids"].size(1) - completion_tensors(trainer.processing_class, ["answer 0"])[
        "completion_ids"
    ].size(1)
    assert width <= 40
    assert all(p.endswith("<|im_start|>assistant\n") for p in prompts)


def test_teacher_logits_on_a_padded_batch_equal_a_forward_of_each_row_alone(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    context, _ = build(trainer, [0] * G, ["short", "a much longer piece of feedback " * 3, None, "mid-sized note"])
    ids, mask = context["teacher_input_ids"], context["teacher_attention_mask"]
    width = 9  # "answer i" + eos
    with torch.no_grad():
        batch = trainer._forward_logits(trainer.teacher_model, ids, mask, width)
        for i in range(G):
            alone = ids[i][mask[i].bool()][None]
            single = trainer._forward_logits(trainer.teacher_model, alone, torch.ones_like(alone), width)
            assert torch.allclose(batch[i], single[0], atol=1e-4)


def test_builder_state_resets_and_a_length_mismatch_raises(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    build(trainer, [0] * G, ["a"] * G)
    assert trainer._rollout_feedback is None and trainer._rollout_success is None
    with pytest.raises(ValueError, match="feedback texts"):
        build(trainer, [0] * G, ["a"] * (G - 1))
    assert trainer._rollout_feedback is None


def test_merge_privileged_context_joins_both_sources(tmp_path):
    trainer, _ = make_trainer(tmp_path, merge_privileged_context=True)
    tok = trainer.processing_class
    output = completion_tensors(tok, ["a"] * G)
    trainer._rollout_success = torch.zeros(G)
    trainer._rollout_feedback = ["from env", None, None, None]
    context = trainer.teacher_context_builder.build(
        output, [[{"role": "user", "content": "q"}]] * G, torch.zeros(G), feedbacks=["hint"] * G
    )
    text = tok.decode(context["teacher_input_ids"][0])
    assert "hint\n\nfrom env" in text
    assert context["self_distillation_mask"].tolist() == [1, 1, 1, 1]


class FixedReward:
    """A reward function with chosen rewards, success flags and feedback."""

    __name__ = "fixed"

    def __init__(self, rewards, success, feedback):
        self.rewards, self.success, self.feedback = rewards, success, feedback
        self.last_feedback = self.last_success = None

    def __call__(self, prompts, completions, **kwargs):
        self.last_feedback, self.last_success = list(self.feedback), list(self.success)
        return list(self.rewards)


def rewards_then_context(trainer, completion_ids_list):
    prompt = [{"role": "user", "content": "q"}]
    rows = [{"prompt": prompt}] * G
    trainer._calculate_rewards(rows, [prompt] * G, ["c"] * G, completion_ids_list)
    texts = [trainer.processing_class.decode(ids) for ids in completion_ids_list]
    return build(trainer, trainer._rollout_success.tolist(), trainer._rollout_feedback, texts=texts)


def test_partial_rewards_never_count_as_success(tmp_path):
    # rewards at or above TRL's threshold of 1.0, but the environment says none succeeded
    reward = FixedReward([1.0, 0.9, 1.5, 0.0], [False] * G, ["half the tests pass"] * G)
    trainer, _ = make_trainer(tmp_path, reward=reward)
    context, prompts = rewards_then_context(trainer, [[65, 66, trainer.processing_class.eos_token_id]] * G)
    assert trainer.teacher_context_builder.last_metrics["self_distillation/success_sample_fraction"] == 0
    assert all("Correct solution" not in p and "half the tests pass" in p for p in prompts)


def test_a_single_feedback_text_reaches_the_template_unchanged_and_several_are_joined(tmp_path):
    reward = FixedReward([0.0] * G, [False] * G, ["  indented error\n", "", "x", None])
    trainer, _ = make_trainer(tmp_path, reward=reward)
    eos = trainer.processing_class.eos_token_id
    _, prompts = rewards_then_context(trainer, [[65, eos], [65, eos], [65] * MAX_LEN, [65, eos]])
    assert FEEDBACK + "  indented error\n" + SOLVE in prompts[0]
    assert FEEDBACK + "x\n\n" + TRUNCATION_NOTICE.format(n=MAX_LEN) + SOLVE in prompts[2]


def test_a_sole_success_with_no_feedback_gets_no_teacher_and_solved_completions_lose_their_feedback(tmp_path):
    reward = FixedReward([1.0, 0.0, 0.0, 0.0], [True, False, False, False], ["stray text", None, None, None])
    trainer, _ = make_trainer(tmp_path, reward=reward)
    context, prompts = rewards_then_context(trainer, [[65, trainer.processing_class.eos_token_id]] * G)
    assert context["self_distillation_mask"].tolist() == [0, 1, 1, 1]
    assert "stray text" not in prompts[0]


def test_a_cut_off_completion_is_told_so(tmp_path):
    reward = FixedReward([0.0] * G, [False] * G, [""] * G)
    trainer, _ = make_trainer(tmp_path, reward=reward)
    eos = trainer.processing_class.eos_token_id
    ids = [[65] * MAX_LEN, [65, eos], [65] * (MAX_LEN - 1) + [eos], [66] * MAX_LEN]
    context, prompts = rewards_then_context(trainer, ids)
    notice = TRUNCATION_NOTICE.format(n=MAX_LEN)
    assert [notice in p for p in prompts] == [True, False, False, True]
    assert context["self_distillation_mask"].tolist() == [1, 0, 0, 1]


WRONG = {
    "generalpoints": ["no formula here", '{"cards": ["2", "3", "4"], "number": [2, 3, 4], "formula": "2+3+99"}'],
    "math": ["I think it is 5.", "\\boxed{-123456}"],
    "synlogic": ["no answer", "<answer>[[[</answer>"],
    "livecode": ["```python\nprint('first wrong output')\n```", "```python\nraise ValueError('second failure')\n```"],
}
KNOBS = {"generalpoints": GAME, "math": dict(train_size=4), "synlogic": dict(train_size=4), "livecode": {}}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_each_environments_feedback_reaches_the_teacher_prompt_of_its_own_completion(tmp_path, name):
    reward = EnvReward(name, **KNOBS[name])
    row = reward.env.dataset("train")[0]
    texts = WRONG[name] * (G // 2)
    feedback = [s.feedback for s in reward.env.score_batch(texts[:2], [row] * 2)]
    assert all(feedback) and feedback[0] != feedback[1], feedback  # two different, non-empty messages
    trainer, _ = make_trainer(tmp_path, reward=reward)
    tok = trainer.processing_class
    rows = [row] * G
    trainer._calculate_rewards(rows, [row["prompt"]] * G, texts, [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts])
    assert trainer._rollout_success.tolist() == [0.0] * G
    _, prompts = build(trainer, trainer._rollout_success.tolist(), trainer._rollout_feedback, texts=texts, prompt=row["prompt"])
    for i, prompt in enumerate(prompts):
        assert feedback[i % 2] in prompt and feedback[1 - i % 2] not in prompt
        assert row["prompt"][-1]["content"] in prompt


# -- the loss in the trainer --------------------------------------------------------------------------------------


def build_inputs(trainer, mask, old=None, advantages=(0.5, -0.25, 1.0, -1.5)):
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 250, (G, 5), generator=g)
    completion = torch.randint(3, 250, (G, MAX_LEN), generator=g)
    completion_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * 6])
    teacher_prompt = torch.randint(3, 250, (G, 9), generator=g)
    inputs = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones(G, 5, dtype=torch.long),
        "completion_ids": completion,
        "completion_mask": completion_mask,
        "teacher_input_ids": torch.cat([teacher_prompt, completion], 1),
        "teacher_attention_mask": torch.cat([torch.ones(G, 9, dtype=torch.long), completion_mask], 1),
        "self_distillation_mask": torch.tensor(mask, dtype=torch.float32),
        "advantages": torch.tensor(advantages),
    }
    if old is not None:
        inputs["old_per_token_logps"] = old
    return inputs


def grads_of(model, loss):
    return [g for g in torch.autograd.grad(loss, list(model.parameters()), allow_unused=True) if g is not None]


def student_logps(trainer, inputs):
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    return selective_log_softmax(trainer._forward_logits(trainer.model, ids, mask, MAX_LEN), inputs["completion_ids"])


def test_the_default_reduction_is_the_authors_run_one_sequence_per_micro_batch(tmp_path):
    trainer, _ = make_trainer(tmp_path)
    assert trainer.args.distillation_reduction == "row_mean"
    trainer.model.train()
    inputs = build_inputs(trainer, mask=[1, 0, 1, 1])  # rows of 6, 4, 5 and 6 tokens; row 1 has no teacher
    row_mean = trainer.compute_loss(trainer.model, dict(inputs))
    # the authors' run: a token mean within each micro-batch of one sequence, scaled by 1 / accumulation steps
    trainer.current_gradient_accumulation_steps = G
    micro_batches = [trainer.compute_loss(trainer.model, {k: v[i : i + 1] for k, v in inputs.items()}) for i in range(G)]
    assert micro_batches[1].item() == 0.0 and all(m > 0 for i, m in enumerate(micro_batches) if i != 1)
    assert torch.allclose(row_mean, sum(micro_batches), atol=1e-6)
    # a single teacher row of the four: a quarter of that row's token mean
    trainer.current_gradient_accumulation_steps = 1
    alone = build_inputs(trainer, mask=[1, 0, 0, 0])
    trainer.args.distillation_reduction = "token_mean"
    token_mean = trainer.compute_loss(trainer.model, dict(alone))
    trainer.args.distillation_reduction = "row_mean"
    assert torch.allclose(trainer.compute_loss(trainer.model, dict(alone)), token_mean / 4, atol=1e-7)
    # token_mean, the option: every distilled token weighs the same, whatever its row's length
    trainer.args.distillation_reduction = "token_mean"
    assert not torch.allclose(trainer.compute_loss(trainer.model, dict(inputs)), row_mean, atol=1e-4)


def test_importance_clip_scales_by_at_most_two_without_gradient_through_the_ratio(tmp_path):
    trainer, _ = make_trainer(tmp_path, distillation_mode="sampled_token")
    trainer.model.train()
    base = build_inputs(trainer, mask=[1, 1, 1, 1])
    lp = student_logps(trainer, base).detach()
    on_policy = trainer.compute_loss(trainer.model, {**base, "old_per_token_logps": lp})
    plain = trainer.compute_loss(trainer.model, dict(base))
    off = trainer.compute_loss(trainer.model, {**base, "old_per_token_logps": lp - math.log(3)})
    assert torch.allclose(on_policy, plain, atol=1e-6) and torch.allclose(off, 2 * plain, atol=1e-6)
    g_off, g_plain = grads_of(trainer.model, off), grads_of(trainer.model, plain)
    assert all(torch.allclose(a, 2 * b, atol=1e-6) for a, b in zip(g_off, g_plain))


@pytest.mark.parametrize("loss_type", ["bnpo", "grpo", "dr_grpo"])
def test_weight_zero_is_grpos_loss(tmp_path, loss_type):
    trainer, env = make_trainer(tmp_path, distillation_weight=0.0, loss_type=loss_type)
    trainer.model.train()
    inputs = build_inputs(trainer, mask=[1, 0, 1, 0])
    inputs["old_per_token_logps"] = student_logps(trainer, inputs).detach() - 0.1  # ratio e^0.1: inside the clip
    sdpo = trainer.compute_loss(trainer.model, dict(inputs))
    grpo_trainer = GRPOTrainer(
        model=trainer.model,
        reward_funcs=[EnvReward("generalpoints", **GAME)],
        args=GRPOConfig(
            output_dir=str(tmp_path / "grpo"),
            use_cpu=True,
            report_to="none",
            per_device_train_batch_size=G,
            num_generations=G,
            loss_type=loss_type,
            max_completion_length=MAX_LEN,
            beta=0.0,
        ),
        train_dataset=env.dataset("train"),
        processing_class=trainer.processing_class,
    )
    grpo_trainer.current_gradient_accumulation_steps = 1

    def same_forward(model, ids, mask, keep, **kwargs):  # GRPO's fused LM head differs from a plain forward by ~1e-3
        logps = student_logps(trainer, inputs)
        return logps, torch.zeros_like(logps), None

    grpo_trainer._get_per_token_logps_and_entropies = same_forward
    grpo = grpo_trainer._compute_loss(trainer.model, dict(inputs))
    assert abs(sdpo.item()) > 1e-3 and torch.allclose(sdpo, grpo, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_of(trainer.model, sdpo), grads_of(trainer.model, grpo)))


@pytest.mark.parametrize("reduction,loss_type", [("token_mean", "dapo"), ("row_mean", "grpo")])
def test_the_hybrid_is_one_policy_gradient_with_mixed_advantages(tmp_path, reduction, loss_type):
    w = 0.1  # the paper's lambda = 0.9
    trainer, _ = make_trainer(
        tmp_path, distillation_mode="sampled_token", distillation_weight=w, loss_type=loss_type, distillation_reduction=reduction
    )
    trainer.model.train()
    inputs = build_inputs(trainer, mask=[1, 0, 1, 1])  # row 1 has no teacher: its SDPO advantage is 0
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    lp = student_logps(trainer, inputs)
    teacher_ids, teacher_mask = inputs["teacher_input_ids"], inputs["teacher_attention_mask"]
    with torch.no_grad():
        teacher_lp = selective_log_softmax(
            trainer._forward_logits(trainer.teacher_model, teacher_ids, teacher_mask, MAX_LEN), inputs["completion_ids"]
        )
    sdpo_advantage = (teacher_lp - lp.detach()) * inputs["self_distillation_mask"][:, None]
    advantage = (1 - w) * inputs["advantages"][:, None] + w * sdpo_advantage
    mask = inputs["completion_mask"]
    if reduction == "token_mean":
        by_hand = -(advantage * lp * mask).sum() / mask.sum()
    else:
        by_hand = -((advantage * lp * mask).sum(-1) / mask.sum(-1)).mean()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_of(trainer.model, loss), grads_of(trainer.model, by_hand)))


# -- the teacher --------------------------------------------------------------------------------------------------


def test_ema_teacher_follows_the_student_and_base_never_changes(tmp_path):
    from trl.experimental.sdpo.teacher_sync import SyncTeacherModelCallback

    trainer, _ = make_trainer(tmp_path, teacher_model_kind="ema", teacher_update_rate=0.25)
    assert trainer.teacher_model is not trainer.model
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher_model.parameters())
    before = [p.detach().clone() for p in trainer.teacher_model.parameters()]
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, SyncTeacherModelCallback)]
    trainer.state.global_step = trainer.args.teacher_sync_steps
    callback.on_step_end(trainer.args, trainer.state, trainer.control, model=trainer.model)
    for b, t, s in zip(before, trainer.teacher_model.parameters(), trainer.model.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * s, atol=1e-6)
    base, _ = make_trainer(tmp_path / "base", teacher_model_kind="base")
    assert not any(isinstance(c, SyncTeacherModelCallback) for c in base.callback_handler.callbacks)


def sdpo_trainer_from_the_algo(tmp_path, **fields):
    algo = SDPO(
        name="sdpo",
        per_device_train_batch_size=G,
        num_generations=G,
        max_completion_length=MAX_LEN,
        max_prompt_length=None,
        distillation_mode="full_logits",
        **fields,
    )
    algo.check(world_size=1)
    model, tokenizer = tiny()
    return algo.build_trainer(model, tokenizer, envs.make("generalpoints", **GAME), algo.training_args(tmp_path, 0, "fp32"))


def test_several_steps_per_generation_batch_clip_from_the_second_and_move_the_ema_once_per_batch(tmp_path):
    """The paper's rich-feedback setup in small: 2 optimiser steps of one question each per generation batch."""
    rate = 0.25
    trainer = sdpo_trainer_from_the_algo(
        tmp_path, max_steps=4, learning_rate=1e-2, teacher_update_rate=rate, trl={"steps_per_generation": 2}
    )
    assert trainer.args.teacher_sync_steps == 2
    start = [p.detach().clone() for p in trainer.teacher_model.parameters()]
    students, teachers, gaps, generated = [], [], [], []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            students.append([p.detach().clone() for p in trainer.model.parameters()])
            teachers.append([p.detach().clone() for p in trainer.teacher_model.parameters()])

    compute_loss, prepare = trainer.compute_loss, trainer._prepare_training_batch

    def compute_loss_recording_the_policy_drift(model, inputs, *args, **kwargs):
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        with torch.no_grad():
            logits = trainer._forward_logits(model, ids, mask, inputs["completion_ids"].size(1))
            lp = selective_log_softmax(logits, inputs["completion_ids"])
        gaps.append(((lp - inputs["old_per_token_logps"]).abs() * inputs["completion_mask"]).max().item())
        return compute_loss(model, inputs, *args, **kwargs)

    def prepare_counting(batch):
        generated.append(len(batch))
        return prepare(batch)

    trainer.compute_loss, trainer._prepare_training_batch = compute_loss_recording_the_policy_drift, prepare_counting
    trainer.add_callback(Record())
    trainer.train()
    assert generated == [2 * G, 2 * G]  # one generation batch per 2 steps
    # the importance ratio pi / pi_old is 1 on a batch's first step and moves from its second on
    assert gaps[0] < 1e-6 and gaps[2] < 1e-6 and gaps[1] > 1e-4 and gaps[3] > 1e-4, gaps
    assert all(not torch.equal(a, b) for a, b in zip(students[0], start))
    ema = [(1 - rate) * t + rate * s for t, s in zip(start, students[1])]
    for after, expected in (
        (teachers[0], start),
        (teachers[1], ema),
        (teachers[2], ema),
        (teachers[3], [(1 - rate) * t + rate * s for t, s in zip(ema, students[3])]),
    ):
        assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(after, expected))
    # with gradient accumulation the cadence still counts optimiser steps: 4 micro-steps of 2 = 2 steps per batch
    accumulating = sdpo_trainer_from_the_algo(tmp_path / "ga", gradient_accumulation_steps=2, trl={"steps_per_generation": 4})
    assert accumulating.args.teacher_sync_steps == 2


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_trust_region_teacher_interpolates_base_and_live_logits(tmp_path, rate):
    trainer, _ = make_trainer(tmp_path, teacher_model_kind="trust_region", teacher_update_rate=rate)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    inputs = build_inputs(trainer, mask=[1] * G)
    got = trainer._compute_teacher_student_logits(trainer.model, trainer.teacher_model, inputs).teacher_logits
    ids, mask = inputs["teacher_input_ids"], inputs["teacher_attention_mask"]
    with torch.no_grad():
        base = trainer._forward_logits(trainer.teacher_model, ids, mask, MAX_LEN)
        live = trainer._forward_logits(trainer.model, ids, mask, MAX_LEN)
    expected = {0.0: base, 1.0: live, 0.5: (base + live) / 2}[rate]
    assert torch.allclose(got, expected, atol=1e-5)
    if rate == 0.5:  # softmax of the mean logits = the normalised geometric mean of the two distributions
        geo = (base.softmax(-1) * live.softmax(-1)).sqrt()
        assert torch.allclose(got.softmax(-1), geo / geo.sum(-1, keepdim=True), atol=1e-5)


# -- config -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"distillation_mode": "logits"}, "distillation_mode=logits is not one of"),
        ({"teacher_model_kind": "frozen"}, "teacher_model_kind=frozen"),
        ({"distillation_mode": "sampled_token", "distillation_alpha": 0.5}, "reverse KL only"),
        ({"distillation_topk": 0}, "distillation_topk >= 1"),
        ({"distillation_weight": 1.5}, "must be in \\[0, 1\\]"),
        ({"advantage_clip": 5.0, "distillation_alpha": 0.5}, "advantage_clip"),
        ({"reprompt_template": "{question}{feedback}"}, "reprompt_template may only use"),
        ({"trl": {"success_reward_threshold": 0.5}}, "Score.success"),
        ({"trl": {"use_vllm": True}}, "set elsewhere: use generation=vllm_colocate or generation=vllm_server"),
        ({"distillation_weight": 0.1}, "set algo.loss_type=grpo \\(not dapo\\)"),
        ({"gradient_accumulation_steps": 2, "trl": {"steps_per_generation": 3}}, "3 micro-steps .* multiple of"),
    ],
)
def test_bad_configs_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        SDPO(name="sdpo", **overrides).check(world_size=1)


# -- test time ----------------------------------------------------------------------------------------------------


def test_discovery_at_k_and_pass_at_k_by_hand():
    times = [[1, 5, math.inf], [3, math.inf, 2]]
    assert discovery_at_k(times, 1) == pytest.approx(1 / 6)
    assert discovery_at_k(times, 3) == pytest.approx(3 / 6)
    assert discovery_at_k(times, 5) == pytest.approx(4 / 6)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))
    assert pass_at_k(5, 4, 2) == 1.0  # n - c < k
    cfg = DiscoverConfig(budget=8, k=[1, 8], bootstrap=200)
    results = {"sdpo": [[1, math.inf]], "multi-turn": [[math.inf, math.inf]], "best-of-k": [[8, 0]]}
    text, numbers = table(results, cfg)
    assert numbers["sdpo"][1][0] == 0.5 and numbers["multi-turn"][8][0] == 0.0
    assert numbers["best-of-k"][1][0] == pytest.approx(0.5) and numbers["best-of-k"][8][0] == 0.5
    assert "discovery@8" in text and text.count("\n") == 4


def test_the_loop_stops_at_the_first_success_counting_its_place_in_the_batch():
    assert first_success([False, False], 0) == math.inf
    assert first_success([False, True, True], 16) == 18
    reward = DiscoveryReward("generalpoints", **GAME)
    row = reward.env.dataset("train")[0]
    solved = reward.env.demonstrations("train")[0]["messages"][-1]["content"]
    assert reward.env.score(solved, row).success
    stop = StopWhenFound(reward)

    class Control:
        should_training_stop = False

    control = Control()
    reward([row["prompt"]] * 3, ["wrong"] * 3, **{k: [v] * 3 for k, v in row.items()})
    stop.on_step_end(None, None, control)
    assert reward.found == math.inf and not control.should_training_stop
    reward([row["prompt"]] * 3, ["wrong", solved, solved], **{k: [v] * 3 for k, v in row.items()})
    stop.on_step_end(None, None, control)
    assert reward.found == 5 and control.should_training_stop
    reward([row["prompt"]] * 3, [solved] * 3, **{k: [v] * 3 for k, v in row.items()})
    assert reward.found == 5  # the first one stays


def test_multi_turn_history_fits_the_window_and_drops_the_oldest_first():
    _, tokenizer = tiny()
    history = [f"feedback number {i} " + "x" * 40 for i in range(10)]
    prompt = multi_turn_prompt("Q?", history, tokenizer, max_tokens=200)
    kept = [h for h in history if h in prompt]
    assert kept == history[-len(kept) :] and 0 < len(kept) < len(history)  # the newest, in order
    assert sum(len(tokenizer(h + "\n\n")["input_ids"]) for h in kept) <= 200
    assert prompt.startswith("Q?\n\nThe following is feedback") and prompt.endswith("Correctly solve the original question.")
    assert multi_turn_prompt("Q?", [], tokenizer, 200) == "Q?"


def test_the_attempt_and_feedback_template_shows_each_kept_attempt_before_its_feedback():
    _, tokenizer = tiny()
    prompt = [{"role": "user", "content": "Q?"}]
    history = [(f"attempt {i} " + "y" * 30, f"feedback {i}") for i in range(10)]
    messages = attempt_and_feedback_messages(prompt, history, tokenizer, max_tokens=200)
    assert messages[0] == prompt[0] and 1 < len(messages) < 1 + 2 * len(history)
    kept = history[-(len(messages) - 1) // 2 :]  # the newest pairs, in order
    for (attempt, feedback), reply, turn in zip(kept, messages[1::2], messages[2::2]):
        assert reply == {"role": "assistant", "content": attempt}
        assert turn == {
            "role": "user",
            "content": f"The following is feedback from your unsuccessful earlier attempt:\n\n{feedback}"
            "\n\nCorrectly solve the original question.",
        }
    assert attempt_and_feedback_messages(prompt, [], tokenizer, 200) == prompt


@pytest.mark.parametrize("template", ["feedback_only", "attempt_and_feedback"])
def test_multi_turn_retry_runs_with_either_template(template):
    model, tokenizer = tiny()
    env = envs.make("generalpoints", **GAME)
    cfg = DiscoverConfig(budget=4, attempts_per_step=2, multi_turn_template=template)
    sampling = {"temperature": 1.0, "max_new_tokens": MAX_LEN, "batch_size": 2}
    assert multi_turn(model, tokenizer, env, env.dataset("train")[0], cfg, sampling) == math.inf  # 6 tokens never solve it
    with pytest.raises(ConfigError, match="multi_turn_template=both is not one of"):
        DiscoverConfig(multi_turn_template="both").check("sdpo", "local")
