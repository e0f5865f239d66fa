"""algo=iwsft: importance-weighted SFT (arXiv 2507.12856)."""

import math

import pytest
import torch
from test_pear import batch, loss_of, tiny
from trl import SFTTrainer

from rlexp import behaviour, envs
from rlexp.algos.iwsft import IWSFT
from rlexp.errors import ConfigError
from rlexp.trainers.iwsft import IWSFTTrainer, iwsft_weights
from rlexp.trainers.sft import LogpsCollator


def test_at_the_start_the_weight_is_one_and_the_loss_is_plain_sft():
    model, tokenizer = tiny()
    env = envs.make("generalpoints", num_cards=3, target=12, prompt_style="short", train_size=6)
    data = behaviour.with_logps(model, behaviour.tokenize_demonstrations(tokenizer, env.demonstrations("train")), "ref_logps")
    for level in ("sequence", "token"):
        iw_loss, iw_grads, trainer = loss_of(
            IWSFTTrainer,
            data,
            model,
            tokenizer,
            iwsft=IWSFT(name="iwsft", level=level),
            data_collator=LogpsCollator(pad_token_id=tokenizer.pad_token_id, column="ref_logps"),
        )
        sft_loss, sft_grads, _ = loss_of(SFTTrainer, data.remove_columns("ref_logps"), model, tokenizer)
        assert torch.allclose(iw_loss, sft_loss, atol=1e-6)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(iw_grads, sft_grads))
        assert trainer._metrics["eval"]["iwsft/w_mean"] == [pytest.approx(1.0)]


def test_sequence_weight_is_the_clamped_geometric_mean_over_trained_tokens_only():
    theta, ref, mask = batch()
    w = iwsft_weights(theta, ref, mask, IWSFT(level="sequence"))
    for b in range(3):
        idx = mask[b].bool()
        want = min(max(math.exp(float((theta[b] - ref[b])[idx].mean())), 0.0), 16.0)
        assert torch.allclose(w[b][idx], torch.full((int(idx.sum()),), want), atol=1e-5)
        assert torch.equal(w[b][~idx], torch.zeros(int((~idx).sum())))
    noisy = ref.clone()
    noisy[~mask.bool()] = -99.0  # prompt and padding positions never count
    assert torch.equal(iwsft_weights(theta, noisy, mask, IWSFT()), w)


def test_clamps_and_temperature():
    theta, ref, mask = batch()
    assert iwsft_weights(theta, ref - 50, mask, IWSFT()).max() == 16.0
    token = iwsft_weights(theta, ref + torch.randn_like(ref) * 5, mask, IWSFT(level="token"))[mask.bool()]
    assert token.min() >= 0.2 and token.max() <= 1.8
    small = iwsft_weights(theta, ref + 0.3, mask, IWSFT(temp=1.0))
    double = iwsft_weights(theta, ref + 0.3, mask, IWSFT(temp=2.0))
    m = mask.bool()
    assert torch.allclose(double[m].log(), 2 * small[m].log(), atol=1e-5)


def test_bad_options_are_one_clear_error():
    with pytest.raises(ConfigError, match="loss_type must be nll"):
        IWSFT(name="iwsft", loss_type="dft").check(1)
    with pytest.raises(ConfigError, match="sequence or token"):
        IWSFT(name="iwsft", level="block").check(1)
    with pytest.raises(ConfigError, match="token_clip"):
        IWSFT(name="iwsft", token_clip=[1.2, 1.8]).check(1)
