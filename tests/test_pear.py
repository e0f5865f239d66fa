"""algo=pear (arXiv 2602.01058) and the behaviour log-probs it trains on (rlexp.behaviour)."""

import math

import datasets
import pytest
import torch
from trl import SFTConfig, SFTTrainer

from rlexp import behaviour, envs
from rlexp.algos.pear import PEAR
from rlexp.errors import ConfigError
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer
from rlexp.trainers.pear import PEARTrainer, pear_log_weights
from rlexp.trainers.sft import LogpsCollator

CLIPS = {"delta_clip": (-0.08, 0.3), "log_weight_clip": (-10.0, 5.0)}


def batch(seed=0, rows=3, length=16):
    g = torch.Generator().manual_seed(seed)
    theta = -torch.rand(rows, length, generator=g) * 3
    beta = -torch.rand(rows, length, generator=g) * 3
    mask = torch.zeros(rows, length)
    mask[0, 3:12] = 1
    mask[1, 1:16] = 1
    mask[2, 6:9] = 1
    return theta, beta, mask


def loop_reference(theta, beta, mask, level, gamma, block_size, delta_clip, log_weight_clip):
    """One example at a time, straight from the formulas."""
    out = torch.zeros_like(theta)
    for b in range(theta.shape[0]):
        idx = [i for i in range(theta.shape[1]) if mask[b, i]]
        deltas = [min(max(float(theta[b, i] - beta[b, i]), delta_clip[0]), delta_clip[1]) for i in idx]
        T = len(idx)
        for t, i in enumerate(idx):
            if level == "sequence":
                log_g = sum(deltas)
            else:
                size = 1 if level == "token" else block_size
                k = t // size
                last = min((k + 1) * size, T) - 1
                log_g = (T - 1 - last) * math.log(gamma) + sum(deltas[(k + 1) * size :])
            out[b, i] = min(max(log_g, log_weight_clip[0]), log_weight_clip[1])
    return out


@pytest.mark.parametrize("level", ["token", "block", "sequence"])
def test_vectorised_weights_equal_the_loop_reference(level):
    theta, beta, mask = batch()
    got, _ = pear_log_weights(theta, beta, mask, PEAR(level=level, gamma=0.97, block_size=3, **CLIPS))
    want = loop_reference(theta, beta, mask, level, 0.97, 3, **CLIPS)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("level", ["token", "block", "sequence"])
def test_behaviour_equal_to_policy_gives_weight_one(level):
    theta, _, mask = batch()
    log_g, _ = pear_log_weights(theta, theta, mask, PEAR(level=level, gamma=1.0, **CLIPS))
    assert torch.equal(log_g, torch.zeros_like(log_g))


def test_pure_discount_and_block_identities():
    theta, beta, mask = batch()
    log_g, _ = pear_log_weights(theta, theta, mask, PEAR(level="token", gamma=0.9, **CLIPS))
    row = log_g[0, 3:12].exp()
    assert torch.allclose(row, torch.tensor([0.9**k for k in range(8, -1, -1)]), atol=1e-6)  # last token: 1
    token, _ = pear_log_weights(theta, beta, mask, PEAR(level="token", **CLIPS))
    block1, _ = pear_log_weights(theta, beta, mask, PEAR(level="block", block_size=1, **CLIPS))
    assert torch.allclose(token, block1)
    whole, _ = pear_log_weights(theta, beta, mask, PEAR(level="block", block_size=100, gamma=1.0, **CLIPS))
    assert torch.equal(whole, torch.zeros_like(whole))  # one block: nothing after it


def test_the_suffix_excludes_the_token_itself():
    theta, beta, mask = batch()
    before, _ = pear_log_weights(theta, beta, mask, PEAR(level="token", **CLIPS))
    changed = beta.clone()
    changed[1, 8] = theta[1, 8] - 0.05  # delta at position 8 becomes +0.05
    after, _ = pear_log_weights(theta, changed, mask, PEAR(level="token", **CLIPS))
    old_delta = float((theta[1, 8] - beta[1, 8]).clamp(-0.08, 0.3))
    assert torch.allclose(after[1, 8:], before[1, 8:], atol=1e-6) and torch.equal(after[0], before[0])
    assert torch.allclose(after[1, 1:8] - before[1, 1:8], torch.full((7,), 0.05 - old_delta), atol=1e-6)


def test_clips_hold_on_extreme_inputs():
    theta, _, mask = batch()
    for beta in (theta - 1e4, theta + 1e4):
        log_g, raw = pear_log_weights(theta, beta, mask, PEAR(level="token", **CLIPS))
        assert torch.isfinite(log_g).all() and log_g.min() >= -10 and log_g.max() <= 5
        assert (raw.abs()[mask.bool()] > 1e3).all()  # the logged delta is the raw one


def test_weights_ignore_padding_and_prompt_length_and_prompt_logps():
    theta, beta, mask = (t[:1] for t in batch())
    base, _ = pear_log_weights(theta, beta, mask, PEAR(level="block", block_size=3, **CLIPS))
    trained = mask[0].bool()
    pad = torch.zeros(1, 7)
    longer, _ = pear_log_weights(
        torch.cat([pad - 1, theta, pad - 2], 1),
        torch.cat([pad - 3, beta, pad], 1),
        torch.cat([pad, mask, pad], 1),
        PEAR(level="block", block_size=3, **CLIPS),
    )
    assert torch.equal(longer[0, 7:-7][trained], base[0][trained])
    noisy_prompt = beta.clone()
    noisy_prompt[0, :3] = -50.0  # positions 0..2 are prompt (mask 0)
    same, _ = pear_log_weights(theta, noisy_prompt, mask, PEAR(level="token", **CLIPS))
    assert torch.equal(same, pear_log_weights(theta, beta, mask, PEAR(level="token", **CLIPS))[0])


# -- the trainer -----------------------------------------------------------------------------------------------


def tiny():
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    model = build_tiny(ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tokenizer)
    return model, tokenizer


def samples(model, tokenizer):
    env = envs.make("generalpoints", num_cards=3, target=12, prompt_style="short", train_size=4)
    torch.manual_seed(1)
    return behaviour.sample_demonstrations(
        model, tokenizer, env, "train", num_samples=2, temperature=0.7, max_new_tokens=24, keep="all"
    )


def test_behaviour_logps_equal_a_fresh_forward_pass_on_the_same_ids():
    model, tokenizer = tiny()
    data = samples(model, tokenizer)
    assert len(data) == 8
    for row in data:
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1] / 0.7, -1).gather(-1, ids[0, 1:, None])[:, 0]
        mask = torch.tensor(row["completion_mask"][1:], dtype=torch.bool)
        got = torch.tensor(row["behavior_logps"][1:])
        assert torch.allclose(got[mask], logps[mask], atol=1e-5)
        assert torch.equal(got[~mask], torch.zeros_like(got[~mask]))
        shifted = torch.tensor(row["behavior_logps"][2:] + [0.0])  # a column off by one must not pass
        assert not torch.allclose(shifted[mask], logps[mask], atol=1e-3)


def loss_of(trainer_cls, data, model, tokenizer, **kwargs):
    args = SFTConfig(
        output_dir="/tmp/rlexp-pear-test",
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=8,
        max_length=None,
        bf16=False,
        completion_only_loss=True,
    )
    trainer = trainer_cls(model=model, args=args, train_dataset=data, processing_class=tokenizer, **kwargs)
    inputs = trainer.data_collator([dict(r) for r in trainer.train_dataset])
    model.zero_grad()
    loss = trainer.compute_loss(model, trainer._prepare_inputs(inputs))
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return loss.detach(), grads, trainer


@pytest.mark.parametrize("level", ["token", "block", "sequence"])
def test_with_behaviour_equal_to_policy_the_loss_is_plain_sft(level):
    model, tokenizer = tiny()
    data = samples(model, tokenizer)
    # behaviour = the policy at temperature 1, so that pi_beta is exactly the trained distribution
    ones = datasets.Dataset.from_dict(
        {
            "input_ids": data["input_ids"],
            "completion_mask": data["completion_mask"],
            "behavior_logps": [
                [lp if m else 0.0 for lp, m in zip(behaviour.token_logps(model, ids, 1.0), mask)]
                for ids, mask in zip(data["input_ids"], data["completion_mask"])
            ],
        }
    )
    pear = PEAR(name="pear", level=level, gamma=1.0, behaviour_data="x")
    pear_loss, pear_grads, trainer = loss_of(
        PEARTrainer, ones, model, tokenizer, pear=pear, data_collator=LogpsCollator(pad_token_id=tokenizer.pad_token_id)
    )
    sft_loss, sft_grads, _ = loss_of(SFTTrainer, ones.remove_columns("behavior_logps"), model, tokenizer)
    assert torch.allclose(pear_loss, sft_loss, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(pear_grads, sft_grads))
    logged = trainer._metrics["eval"]  # the model is in eval mode here (it just sampled)
    assert logged["pear/weight_mean"] == [pytest.approx(1.0)] and logged["pear/ess"] == [pytest.approx(1.0)]


def test_a_different_behaviour_changes_the_loss_and_logs_the_weights():
    model, tokenizer = tiny()
    data = samples(model, tokenizer)
    pear = PEAR(name="pear", behaviour_data="x")
    lowered = data.map(
        lambda r: {"behavior_logps": [lp - 0.05 if m else 0.0 for lp, m in zip(r["behavior_logps"], r["completion_mask"])]}
    )
    loss, _, trainer = loss_of(
        PEARTrainer, lowered, model, tokenizer, pear=pear, data_collator=LogpsCollator(pad_token_id=tokenizer.pad_token_id)
    )
    logged = trainer._metrics["eval"]
    assert logged["pear/weight_max"][0] > 1.0 and 0 < logged["pear/ess"][0] <= 1.0
    assert set(logged) >= {
        "pear/weight_min",
        "pear/frac_at_floor",
        "pear/frac_at_ceiling",
        "pear/delta_mean",
        "pear/frac_delta_clipped",
    }


def test_missing_or_misaligned_behaviour_data_is_one_clear_error(tmp_path):
    path = str(tmp_path / "data")
    datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]], "completion_mask": [[0, 1, 1]]}).save_to_disk(path)
    with pytest.raises(ConfigError, match="has no behavior_logps column"):
        behaviour.load_demonstrations(path)
    bad = str(tmp_path / "bad")
    datasets.Dataset.from_dict(
        {"input_ids": [[1, 2, 3]], "completion_mask": [[0, 1, 1]], "behavior_logps": [[0.0, -1.0]]}
    ).save_to_disk(bad)
    with pytest.raises(ConfigError, match="must line up token by token"):
        behaviour.load_demonstrations(bad)
    with pytest.raises(ConfigError, match="needs behaviour log-probs"):
        PEAR(name="pear").check(1)
    with pytest.raises(ConfigError, match="loss_type must be nll"):
        PEAR(name="pear", behaviour_data=path, loss_type="dft").check(1)
