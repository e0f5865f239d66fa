"""algo=luffy: LUFFY's demonstration-augmented GRPO (arXiv 2504.14945)."""

import pytest
import torch
from test_pear import tiny
from trl import GRPOConfig, GRPOTrainer

from rlexp import envs
from rlexp.algos.luffy import LUFFY
from rlexp.errors import ConfigError
from rlexp.rewards import EnvReward
from rlexp.trainers.luffy import LuffyTrainer, shaped_logps

MAX_LEN = 6


def test_shaping_is_p_over_p_plus_gamma_and_lifts_unlikely_tokens():
    p = torch.tensor([1e-4, 0.01, 0.5, 0.99], requires_grad=True)
    f = shaped_logps(p.log(), 0.1).exp()
    assert torch.allclose(f, p / (p + 0.1))
    f.sum().backward()
    assert torch.allclose(p.grad, 0.1 / (p.detach() + 0.1) ** 2)  # the closed form of f'(p)
    assert p.grad[0] > p.grad[-1]


def trainer_and_inputs(demo_rows):
    model, tokenizer = tiny()
    env = envs.make("generalpoints", num_cards=3, target=12, prompt_style="short", reward_mode="binary", train_size=4)
    args = GRPOConfig(
        output_dir="/tmp/rlexp-luffy-test",
        use_cpu=True,
        report_to="none",
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=MAX_LEN,
        scale_rewards="none",
        loss_type="dr_grpo",
        epsilon=1e9,
    )
    trainer = LuffyTrainer(
        model=model,
        reward_funcs=[EnvReward("generalpoints", num_cards=3, target=12)],
        args=args,
        train_dataset=env.dataset("train"),
        processing_class=tokenizer,
        demonstrations={},
        shaping_gamma=0.1,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which these tests skip
    g = torch.Generator().manual_seed(0)
    inputs = {
        "prompt_ids": torch.randint(3, 250, (4, 5), generator=g),
        "prompt_mask": torch.ones(4, 5, dtype=torch.long),
        "completion_ids": torch.randint(3, 250, (4, MAX_LEN), generator=g),
        "completion_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * 6]),
        "advantages": torch.tensor([0.5, -0.5, 0.75, -0.25]),
        "demo_mask": torch.tensor(demo_rows),
    }
    return trainer, model, inputs


def loss_and_grads(fn, model, inputs):
    model.zero_grad()
    loss = fn(dict(inputs))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_without_demonstrations_luffy_is_grpo():
    trainer, model, inputs = trainer_and_inputs([False] * 4)
    model.train()
    luffy, luffy_grads = loss_and_grads(lambda x: trainer._compute_loss(model, x), model, inputs)
    grpo, grpo_grads = loss_and_grads(lambda x: GRPOTrainer._compute_loss(trainer, model, x), model, inputs)
    assert torch.allclose(luffy, grpo) and all(torch.equal(a, b) for a, b in zip(luffy_grads, grpo_grads))


def test_demonstration_rows_get_the_shaped_loss():
    trainer, model, inputs = trainer_and_inputs([False, True, False, True])
    model.train()
    luffy, luffy_grads = loss_and_grads(lambda x: trainer._compute_loss(model, x), model, inputs)

    def by_hand(x):
        ids = torch.cat([x["prompt_ids"], x["completion_ids"]], 1)
        mask = torch.cat([x["prompt_mask"], x["completion_mask"]], 1)
        logps, _, *_ = trainer._get_per_token_logps_and_entropies(model, ids, mask, MAX_LEN)
        a = x["advantages"][:, None]
        on_policy = -a * torch.exp(logps - logps.detach())
        demo = -a * logps.exp() / (logps.exp() + 0.1)
        per_token = torch.where(x["demo_mask"][:, None], demo, on_policy)
        return (per_token * x["completion_mask"]).sum() / (4 * MAX_LEN)  # dr_grpo's constant normaliser

    manual, manual_grads = loss_and_grads(by_hand, model, inputs)
    assert torch.allclose(luffy, manual, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(luffy_grads, manual_grads))


def test_luffy_defaults_and_checks():
    algo = LUFFY(name="luffy")
    assert (algo.scale_rewards, algo.loss_type, algo.epsilon, algo.shaping_gamma) == ("none", "dr_grpo", 1e9, 0.1)
    with pytest.raises(ConfigError, match="num_iterations must be 1"):
        LUFFY(name="luffy", num_iterations=2).check(1)
    with pytest.raises(ConfigError, match="shaping_gamma"):
        LUFFY(name="luffy", shaping_gamma=0).check(1)
