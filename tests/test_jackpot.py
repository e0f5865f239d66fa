"""algo=jackpot (arXiv 2602.06107): the OBRS math, the trainer's weights, vLLM parsing, CLI smokes."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from trl import GRPOConfig, GRPOTrainer
from trl.generation.vllm_generation import extract_logprobs
from trl.trainer.utils import pad

from rlexp import envs
from rlexp.algos.jackpot import Jackpot, JackpotOptions
from rlexp.errors import ConfigError
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer
from rlexp.rewards import EnvReward
from rlexp.schema import GenerationConfig
from rlexp.trainers.actor_rollouts import actor_logprobs_from_vllm, candidates_to_tensors, check_same_vocabulary, topk_candidates
from rlexp.trainers.jackpot import (
    JackpotGRPOTrainer,
    kl_terms,
    log_acceptance,
    obrs_sequence_weights,
    obrs_token_weights,
    truncated_importance_weights,
    z_sum,
)

MAX_LEN = 6
PROMPT_LEN = 5
# an actor smaller than the policy, with other weights
ACTOR = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, init_seed=1)


# ---------------------------------------------------------------- the math on synthetic categorical distributions


def synthetic(vocab=5000, seed=0, spread=2.0):
    """The paper's synthetic setting (arXiv 2602.06107): p = softmax(l), q = softmax(l + eps), l ~ N(0, 3), eps ~ N(0, spread)."""
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(vocab, generator=g, dtype=torch.float64)
    logp = F.log_softmax(logits, -1)
    logq = F.log_softmax(logits + spread * torch.randn(vocab, generator=g, dtype=torch.float64), -1)
    return logp, logq


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0, 5.0])
def test_monte_carlo_acceptance_matches_z(lam):
    logp, logq = synthetic()
    z = z_sum(logq, logp, lam).item()
    n = 200_000
    g = torch.Generator().manual_seed(1)
    tokens = torch.multinomial(logq.exp(), n, replacement=True, generator=g)
    uniform = torch.rand(1, n, generator=g, dtype=torch.float64)
    result = obrs_token_weights(logp[tokens][None], logq[tokens][None], torch.full((1, n), z), torch.ones(1, n), uniform,
                                lam=lam, max_weight=1e9)  # fmt: skip
    sigma = math.sqrt(z * (1 - z) / n)
    assert abs(result.accept_rate - z) < 3 * sigma, (result.accept_rate, z)
    assert abs(result.expected_accept_rate - z) < 3 * sigma
    # the exact Z needs no bias correction: kappa is 1 up to the sampling noise
    assert abs(result.kappa - 1) < 3 * sigma / z


def test_z_is_one_minus_tv_at_lambda_one_non_increasing_and_restores_the_target():
    logp, logq = synthetic()
    tv = 0.5 * (logp.exp() - logq.exp()).abs().sum().item()
    assert z_sum(logq, logp, 1.0).item() == pytest.approx(1 - tv, abs=1e-12)
    zs = [z_sum(logq, logp, lam).item() for lam in (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 50.0)]
    assert all(a >= b for a, b in zip(zs, zs[1:])) and zs[0] > 0.99
    # w = Z max(lambda, p/q) is p / q~ with q~ = min(q, p/lambda) / Z, and KL(p || q~) falls as lambda grows
    kls = []
    for lam in (0.5, 1.0, 2.0, 5.0):
        z = z_sum(logq, logp, lam)
        log_q_tilde = torch.minimum(logq, logp - math.log(lam)) - z.log()
        w = z * torch.maximum(torch.tensor(lam, dtype=torch.float64), (logp - logq).exp())
        assert torch.allclose(w, (logp - log_q_tilde).exp(), rtol=1e-10)
        kls.append((logp.exp() * (logp - log_q_tilde)).sum().item())
    kl_before = (logp.exp() * (logp - logq)).sum().item()
    assert kl_before > kls[0] > kls[1] > kls[2] > kls[3]


def test_actor_equal_to_target_accepts_one_over_lambda_with_weight_one():
    logp, _ = synthetic()
    n, lam = 100_000, 3.0
    g = torch.Generator().manual_seed(2)
    tokens = torch.multinomial(logp.exp(), n, replacement=True, generator=g)
    lp = logp[tokens][None]
    z = z_sum(logp, logp, lam).item()
    assert z == pytest.approx(1 / lam)
    result = obrs_token_weights(lp, lp, torch.full((1, n), z), torch.ones(1, n), torch.rand(1, n, generator=g, dtype=torch.float64),
                                lam=lam, max_weight=10.0, bias_correction=False)  # fmt: skip
    assert abs(result.accept_rate - 1 / lam) < 3 * math.sqrt(2 / 9 / n)
    assert torch.allclose(result.rho, torch.ones_like(result.rho))


def test_sample_kl_estimates_match_the_closed_form_before_and_after_rejection():
    logp, logq = synthetic(spread=1.0)
    lam, n = 1.0, 200_000
    g = torch.Generator().manual_seed(5)
    tokens = torch.multinomial(logq.exp(), n, replacement=True, generator=g)
    log_r = logp[tokens] - logq[tokens]
    z = z_sum(logq, logp, lam)
    accepted = torch.rand(n, generator=g, dtype=torch.float64) < torch.clamp(log_r - math.log(lam), max=0).exp()
    log_w = (z.log() + torch.clamp(log_r, min=math.log(lam)))[accepted]
    log_q_tilde = torch.minimum(logq, logp - math.log(lam)) - z.log()

    def kl(log_a, log_b):
        return (log_a.exp() * (log_a - log_b)).sum().item()

    before_qp, before_pq = kl_terms(log_r)
    after_qp, after_pq = kl_terms(log_w)
    for samples, closed in ((before_qp, kl(logq, logp)), (before_pq, kl(logp, logq)),
                            (after_qp, kl(log_q_tilde, logp)), (after_pq, kl(logp, log_q_tilde))):  # fmt: skip
        assert abs(samples.mean().item() - closed) < 3 * samples.std().item() / math.sqrt(len(samples)), (samples.mean(), closed)
    assert kl(logp, log_q_tilde) < kl(logp, logq) and kl(log_q_tilde, logp) < kl(logq, logp)


def test_topk_estimate_never_exceeds_exact_z_and_is_exact_at_full_vocabulary():
    g = torch.Generator().manual_seed(3)
    vocab = 259
    for sharpness in (0.3, 1.0, 3.0, 10.0):
        base = sharpness * torch.randn(200, vocab, generator=g)
        logp = F.log_softmax(base, -1)
        logq = F.log_softmax(base + sharpness * torch.randn(200, vocab, generator=g), -1)
        sampled = torch.multinomial(logq.exp(), 1, generator=g)[:, 0]
        for lam in (0.2, 1.0, 4.0):
            exact = z_sum(logq, logp, lam)
            for k in (1, 5, 20, vocab):
                ids, cand_logq = topk_candidates(logq, sampled, k)
                approx = z_sum(cand_logq, logp.gather(1, ids), lam)
                assert (approx <= exact + 1e-6).all(), (sharpness, lam, k)
                if k == vocab:
                    assert torch.allclose(approx, exact, atol=1e-5)
    # the sampled id, when not in the top-k, is a candidate; when in it, it is not counted twice
    ids, cand = topk_candidates(torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])), torch.tensor([3]), 2)
    assert ids.tolist() == [[0, 1, 3]] and torch.allclose(cand.exp(), torch.tensor([[0.5, 0.3, 0.05]]))
    ids, cand = topk_candidates(torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])), torch.tensor([1]), 2)
    assert cand.exp()[0, 2] == 0 and z_sum(cand, cand, 1.0).item() == pytest.approx(0.8)


def test_token_weights_ignore_padding_and_sequence_level_weighs_whole_completions():
    g = torch.Generator().manual_seed(4)
    logp, logq = -torch.rand(3, 5, generator=g) * 3, -torch.rand(3, 5, generator=g) * 3
    z_approx, uniform = torch.rand(3, 5, generator=g), torch.rand(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    garbage = (1 - mask) * 17.0  # whatever the padded positions hold
    kwargs = dict(lam=1.0, max_weight=2.0)
    clean = obrs_token_weights(logp, logq, z_approx, mask, uniform, **kwargs)
    dirty = obrs_token_weights(logp + garbage, logq - garbage, z_approx + garbage, mask, uniform, **kwargs)
    valid = mask.bool()
    assert clean.kappa == dirty.kappa and torch.equal(clean.accepted, dirty.accepted)
    assert torch.equal(clean.rho[valid], dirty.rho[valid]) and not dirty.accepted[~valid].any()
    # kappa calibrates the mean Z to the realised acceptance
    assert (clean.z * valid).sum().item() / valid.sum().item() == pytest.approx(clean.accept_rate)

    seq = obrs_sequence_weights(logp, logq, mask, uniform, **kwargs)
    log_ratio = ((logp - logq) * mask).sum(-1)
    expected_a = torch.clamp(log_ratio, max=0.0).exp()
    assert torch.allclose(seq.accept_prob[:, 0], expected_a)
    assert seq.rho.shape == (3, 1) and float(seq.z) == seq.accept_rate
    for row in range(3):  # a whole completion is kept or dropped
        assert len(set(seq.accepted[row][valid[row]].tolist())) == 1


# ---------------------------------------------------------------- the trainer on a fixed batch


def tiny_policy_and_tokenizer():
    tokenizer = byte_tokenizer()
    return build_tiny(ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tokenizer), tokenizer


def make_trainer(actor=None, temperature=1.0, **options):
    model, tokenizer = tiny_policy_and_tokenizer()
    env = envs.make("generalpoints", num_cards=3, target=12, prompt_style="short", reward_mode="binary", train_size=4)
    args = GRPOConfig(
        output_dir="/tmp/rlexp-jackpot-test",
        use_cpu=True,
        report_to="none",
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=MAX_LEN,
        loss_type="dapo",
        temperature=temperature,
    )
    actor_model = build_tiny(ModelConfig(**ACTOR), tokenizer) if actor == "tiny" else actor
    trainer = JackpotGRPOTrainer(model=model, reward_funcs=[EnvReward("generalpoints", num_cards=3, target=12)], args=args,
                                 train_dataset=env.dataset("train"), processing_class=tokenizer, actor=actor_model,
                                 options=JackpotOptions(**options))  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which these tests skip
    model.train()
    return trainer, model


def batch(extra_padding=0):
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * 6])
    completion_ids = torch.randint(3, 250, (4, MAX_LEN), generator=g)
    if extra_padding:
        completion_ids = torch.cat([completion_ids, torch.zeros(4, extra_padding, dtype=torch.long)], 1)
        mask = torch.cat([mask, torch.zeros(4, extra_padding, dtype=torch.long)], 1)
    return {
        "prompt_ids": torch.randint(3, 250, (4, PROMPT_LEN), generator=g), "prompt_mask": torch.ones(4, PROMPT_LEN, dtype=torch.long),
        "completion_ids": completion_ids, "completion_mask": mask,
        "advantages": torch.tensor([0.5, -0.5, 0.75, -0.25]), "num_items_in_batch": mask.sum(),
    }  # fmt: skip


def loss_and_grads(fn, model, inputs):
    model.zero_grad()
    loss = fn(dict(inputs))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def actor_logps(actor, inputs, temperature=1.0):
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    with torch.no_grad():
        logits = actor(input_ids=ids, attention_mask=mask).logits[:, PROMPT_LEN - 1 : -1].float() / temperature
    return F.log_softmax(logits, -1).gather(2, inputs["completion_ids"][..., None])[..., 0]


def test_actor_equal_to_policy_accepts_every_token_and_the_loss_is_grpo():
    inputs = batch()
    valid = inputs["completion_mask"].bool()
    # the top-k estimate (default): every token is accepted
    trainer, _ = make_trainer()
    out = trainer._apply_jackpot(dict(inputs))
    assert trainer._metrics["train"]["jackpot/accept_rate"] == [1.0]
    assert torch.equal(out["tool_mask"].bool(), valid)
    # with Z over the whole vocabulary, Z = w = rho = 1, and the loss and gradients are GRPO's
    trainer, model = make_trainer(z_estimate="exact")
    out = trainer._apply_jackpot(dict(inputs))
    assert torch.allclose(out["jackpot_rho"][valid], torch.ones(int(valid.sum())), atol=1e-6)
    jackpot, jackpot_grads = loss_and_grads(lambda x: trainer._compute_loss(model, x), model, out)
    grpo, grpo_grads = loss_and_grads(lambda x: GRPOTrainer._compute_loss(trainer, model, x), model, inputs)
    assert torch.allclose(jackpot, grpo, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(jackpot_grads, grpo_grads))


def test_lambda_to_zero_is_trls_token_truncated_importance_sampling():
    inputs = batch()
    valid = inputs["completion_mask"].bool()
    c1 = 1.02  # low enough that some ratios of these two near-uniform tiny models are truncated
    trainer, model = make_trainer(actor="tiny", obrs_lambda=1e-9, z_estimate="exact", max_weight=c1)
    out = trainer._apply_jackpot(dict(inputs))
    # TRL's own log-probs for the policy (its fused head), the actor's from a plain forward
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    with torch.no_grad():
        old, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, model, ids, attention, MAX_LEN)
    sampling = actor_logps(trainer.rollout_actor, inputs)
    # grpo_trainer.py, vllm_importance_sampling_mode="token_truncate", clip_min None, clip_max c1
    trl_ratio = torch.clamp(torch.exp(torch.nan_to_num((old - sampling) * valid, nan=0.0)), min=None, max=c1)
    assert 0 < (trl_ratio[valid] == c1).float().mean() < 1, "the test needs some truncated ratios"
    assert torch.allclose(out["jackpot_rho"][valid], trl_ratio[valid], atol=1e-5)
    assert torch.equal(out["tool_mask"].bool(), valid), "lambda -> 0 accepts everything"
    tis, _ = make_trainer(actor="tiny", correction="tis", max_weight=c1)
    assert torch.allclose(tis._apply_jackpot(dict(inputs))["jackpot_rho"][valid], trl_ratio[valid], atol=1e-5)


def test_distinct_actor_rejects_some_tokens_and_rejected_tokens_get_no_gradient():
    inputs = batch()
    valid = inputs["completion_mask"].bool()
    trainer, model = make_trainer(actor="tiny", obrs_lambda=1.05)  # above 1: rejects a few percent even here
    out = trainer._apply_jackpot(dict(inputs))
    keep = out["tool_mask"].bool()
    assert keep.sum() < valid.sum() and keep.sum() > 0 and not keep[~valid].any()
    assert out["num_items_in_batch"] == keep.sum()
    # the completion table's column (rlexp/tracking.py): each row's share of its tokens accepted
    assert trainer.rollout_columns["accepted_share"] == pytest.approx((keep.sum(-1) / valid.sum(-1)).tolist())
    metrics = trainer._metrics["train"]
    assert metrics["jackpot/kl_actor_policy_before"][0] > 0
    assert metrics["jackpot/Z_mean"][0] == pytest.approx(metrics["jackpot/accept_rate"][0], rel=1e-5)
    # the loss through TRL equals the masked, reweighted clipped objective written out (dapo: sum / accepted tokens)
    jackpot, _ = loss_and_grads(lambda x: trainer._compute_loss(model, x), model, out)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logps, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, model, ids, attention, MAX_LEN)
    ratio = torch.exp(logps - logps.detach())
    a = inputs["advantages"][:, None]
    per_token = -torch.min(ratio * a, torch.clamp(ratio, 0.8, 1.2) * a) * out["jackpot_rho"]
    assert torch.allclose(jackpot, (per_token * keep).sum() / keep.sum(), atol=1e-6)
    # a rejected token's log-prob gets no gradient; rejected tokens stay in the attention context
    captured = {}
    own = trainer._get_per_token_logps_and_entropies

    def capture(*args, **kwargs):
        logps, *rest = own(*args, **kwargs)
        logps.retain_grad()
        captured["logps"] = logps
        return (logps, *rest)

    trainer._get_per_token_logps_and_entropies = capture
    trainer._compute_loss(model, dict(out)).backward()
    grad = captured["logps"].grad
    assert (grad[valid & ~keep] == 0).all() and (grad[keep] != 0).all()
    assert torch.equal(out["completion_mask"], inputs["completion_mask"])


def test_padding_does_not_change_a_weight_and_masks_are_reproducible():
    outs = []
    for extra in (0, 3, 0):
        trainer, _ = make_trainer(actor="tiny", obrs_lambda=1.05)
        out = trainer._apply_jackpot(batch(extra_padding=extra))
        outs.append((out, trainer._metrics["train"]))
    (a, ma), (b, mb), (c, _) = outs
    valid = a["completion_mask"].bool()
    assert torch.allclose(a["jackpot_rho"][valid], b["jackpot_rho"][:, :MAX_LEN][valid], atol=1e-6)
    assert torch.equal(a["tool_mask"], b["tool_mask"][:, :MAX_LEN]) and not b["tool_mask"][:, MAX_LEN:].any()
    assert ma["jackpot/kappa"] == pytest.approx(mb["jackpot/kappa"], rel=1e-6)
    assert torch.equal(a["tool_mask"], c["tool_mask"]), "the same rejection_seed draws the same masks"
    other, _ = make_trainer(actor="tiny", obrs_lambda=3.0, rejection_seed=1)
    same, _ = make_trainer(actor="tiny", obrs_lambda=3.0, rejection_seed=0)
    assert not torch.equal(other._apply_jackpot(batch())["tool_mask"], same._apply_jackpot(batch())["tool_mask"])


def test_trainer_topk_z_is_below_exact_and_target_new_equals_ref_under_the_default_schedule():
    inputs = batch()
    valid = inputs["completion_mask"].bool()
    topk, _ = make_trainer(actor="tiny", z_top_k=20)
    exact, _ = make_trainer(actor="tiny", z_estimate="exact")
    z_topk = topk._apply_jackpot(dict(inputs))["jackpot_z_approx"]
    z_exact = exact._apply_jackpot(dict(inputs))["jackpot_z_approx"]
    assert (z_topk[valid] <= z_exact[valid] + 1e-6).all() and (z_topk[valid] < z_exact[valid] - 0.1).any()
    losses = []
    for target in ("ref", "new"):
        trainer, model = make_trainer(actor="tiny", obrs_lambda=1.05, target=target)
        out = trainer._apply_jackpot(dict(inputs))
        losses.append(loss_and_grads(lambda x: trainer._compute_loss(model, x), model, out))
    (ref, ref_grads), (new, new_grads) = losses
    assert torch.allclose(ref, new, atol=1e-6) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ref_grads, new_grads))


def test_the_actor_records_its_logprobs_at_the_sampling_temperature_while_it_generates():
    trainer, _ = make_trainer(actor="tiny", temperature=0.7, z_top_k=5)
    prompt = torch.randint(3, 250, (4, PROMPT_LEN), generator=torch.Generator().manual_seed(6))
    torch.manual_seed(0)
    completions, logprobs = trainer._generate_single_turn(prompt.tolist(), None, {}, 1)
    assert logprobs is None and trainer._actor_report is not None
    report = trainer._actor_report
    lengths = [len(c) for c in completions]
    completion_ids = pad([torch.tensor(c) for c in completions], padding_value=0, padding_side="right")
    completion_mask = pad([torch.ones(n, dtype=torch.long) for n in lengths], padding_value=0, padding_side="right")
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": completion_ids,
              "completion_mask": completion_mask, "advantages": torch.zeros(4), "num_items_in_batch": completion_mask.sum()}  # fmt: skip
    ids = torch.cat([prompt, completion_ids], 1)
    with torch.no_grad():
        logits = trainer.rollout_actor(
            input_ids=ids, attention_mask=torch.cat([inputs["prompt_mask"], completion_mask], 1)
        ).logits
    full = F.log_softmax(logits[:, PROMPT_LEN - 1 : -1].float() / 0.7, -1)
    valid = completion_mask.bool()
    expected = full.gather(2, completion_ids[..., None])[..., 0]
    C = completion_ids.size(1)
    assert torch.allclose(report["sampled"][:, :C][valid], expected[valid], atol=1e-4)
    assert torch.equal(report["candidate_ids"][:, :C, :5][valid], full.topk(5, -1).indices[valid])
    # the scoring pass takes the recorded numbers: no second actor pass, the same log-probs
    out = trainer._apply_jackpot(inputs)
    assert torch.allclose(out["jackpot_logp_actor"][valid], expected[valid], atol=1e-4)


# ---------------------------------------------------------------- vLLM output, offline


def vllm_output(seqs):
    """vLLM-shaped RequestOutput objects: per position a dict token_id -> Logprob(logprob, rank, decoded_token)."""
    outputs = []
    for seq in seqs:
        positions = [{tid: SimpleNamespace(logprob=lp, rank=rank, decoded_token=chr(97 + tid % 26)) for tid, (lp, rank) in entry.items()}
                     for entry in seq["logprobs"]]  # fmt: skip
        outputs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=seq["tokens"], logprobs=positions)]))
    return outputs


def test_vllm_logprobs_take_the_sampled_token_not_the_top1():
    # logprobs=2: top-2 per position plus the sampled token, which vLLM always includes, at its own rank
    seqs = [
        {"tokens": [7, 3], "logprobs": [
            {5: (-0.4, 1), 7: (-1.6, 2)},  # sampled = rank 2
            {9: (-0.2, 1), 4: (-2.1, 2), 3: (-5.0, 40)},  # sampled outside the top-2
        ]},
        {"tokens": [5], "logprobs": [{5: (-0.4, 1), 7: (-1.6, 2)}]},  # sampled = top-1
    ]  # fmt: skip
    logprobs, token_ids = extract_logprobs(vllm_output(seqs))
    assert [[lp[0] for lp in seq] for seq in logprobs] == [[-0.4, -0.2], [-0.4]], "TRL keeps the top-1 entry"
    parsed = actor_logprobs_from_vllm(logprobs, token_ids, [s["tokens"] for s in seqs])
    assert parsed.sampled == [[-1.6, -5.0], [-0.4]]
    assert parsed.candidate_ids[0][1] == [9, 4, 3] and parsed.candidate_logps[0][1] == [-0.2, -2.1, -5.0]
    ids, logps = candidates_to_tensors(parsed, width=3, length=2, device="cpu")
    assert ids.shape == (2, 2, 3) and torch.isinf(logps[1, 1]).all() and torch.isinf(logps[0, 0, 2])
    # NaN log-probs (vLLM could not score) become NaN for the sampled token; a missing sampled token is an error
    nan_seq = [{"tokens": [5], "logprobs": [{5: (float("nan"), 1)}]}]
    logprobs, token_ids = extract_logprobs(vllm_output(nan_seq))
    assert math.isnan(actor_logprobs_from_vllm(logprobs, token_ids, [[5]]).sampled[0][0])
    with pytest.raises(ValueError, match="sampled token 8"):
        actor_logprobs_from_vllm([[[-0.1]]], [[[5]]], [[8]])


class FakeVLLM:
    """Stands in for TRL's VLLMGeneration: returns a recorded generation, counts weight syncs."""

    def __init__(self, completion_ids, logprobs, token_ids):
        self.recorded, self.syncs, self.logprobs = (completion_ids, logprobs, token_ids), 0, 0

    def sync_weights(self):
        self.syncs += 1

    def generate(self, prompts, images, num_generations, profiler=None):
        completion_ids, logprobs, token_ids = self.recorded
        return prompts, completion_ids, logprobs, token_ids


def test_vllm_path_scores_the_sampled_token_and_accepts_the_policys_own_samples():
    """The vLLM branch of the trainer on a recorded output whose numbers are the policy's own: every token accepted."""
    inputs = batch()
    trainer, model = make_trainer(z_top_k=3)
    valid = inputs["completion_mask"].bool()
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    with torch.no_grad():
        full = F.log_softmax(model(input_ids=ids, attention_mask=attention).logits[:, PROMPT_LEN - 1 : -1].float(), -1)
    completions, logprobs, token_ids = [], [], []
    for row in range(4):
        n = int(valid[row].sum())
        tokens = inputs["completion_ids"][row, :n].tolist()
        completions.append(tokens)
        seq_lp, seq_ids = [], []
        for t, tok in enumerate(tokens):
            order = full[row, t].argsort(descending=True)
            top = order[:3].tolist() + ([tok] if tok not in order[:3].tolist() else [])  # sorted by rank, sampled last
            seq_ids.append(top)
            seq_lp.append([full[row, t, i].item() for i in top])
        logprobs.append(seq_lp)
        token_ids.append(seq_ids)
    trainer.use_vllm = True
    trainer.vllm_generation = FakeVLLM(completions, logprobs, token_ids)
    trainer._last_loaded_step = -1
    out_ids, sampled = trainer._generate_single_turn([[1, 2]] * 4, None, {}, 1)
    assert trainer.vllm_generation.syncs == 1, "actor self, lag 0: the policy's weights go to vLLM as in TRL"
    assert out_ids == completions
    for row, tokens in enumerate(completions):
        assert sampled[row] == pytest.approx([full[row, t, tok].item() for t, tok in enumerate(tokens)])
        assert any(sampled[row][t] != logprobs[row][t][0] for t in range(len(tokens))), "sampled != top-1 somewhere"
    out = trainer._apply_jackpot(dict(inputs))
    assert trainer._metrics["train"]["jackpot/accept_rate"] == [1.0]
    assert trainer._metrics["train"]["jackpot/kl_actor_policy_before"][0] == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(out["tool_mask"].bool(), valid)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("fields, message", [
    ({"obrs_lambda": 0.0}, "algo.obrs_lambda must be positive"),
    ({"z_top_k": 0}, "algo.z_top_k must be at least 1"),
    ({"level": "batch"}, "algo.level=batch is not one of token, sequence"),
    ({"correction": "icepop"}, "algo.correction=icepop is not one of"),
    ({"loss_type": "sapo"}, "algo.loss_type=sapo"),
    ({"trl": {"vllm_importance_sampling_mode": "token_mask"}}, "set elsewhere: use generation.importance_sampling_mode"),
    ({"trl": {"vllm_importance_sampling_clip_min": 0.5}}, "is set by algo=jackpot"),
    ({"trl": {"importance_sampling_level": "sequence"}}, "algo.level=sequence"),
    ({"level": "sequence", "target": "new"}, "algo.target=new is token-level only"),
    ({"actor": {"hidden_size": 16}, "actor_lag": 2}, "algo.actor_lag makes a stale copy of the policy"),
    ({"actor": {"hidden_sise": 16}}, "algo.actor: "),
    ({"trl": {"top_p": 0.9}}, "algo.trl.top_p=0.9"),
    ({"trl": {"use_vllm": True}}, "set elsewhere: use generation=vllm_colocate or generation=vllm_server"),
    ({"actor": "org/an-actor-not-in-the-cache"}, "algo.actor: model=org/an-actor-not-in-the-cache needs"),  # offline in tests
])  # fmt: skip
def test_bad_configs_are_one_clear_line(fields, message):
    with pytest.raises(ConfigError, match=message) as err:
        Jackpot(**fields).check(world_size=1)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fields, generation, message", [
    ({"z_estimate": "exact"}, {"name": "vllm_colocate"}, "algo.z_estimate=exact needs"),
    ({"actor": {"hidden_size": 16}}, {"name": "vllm_server"}, "the actor is the model vLLM runs"),
    ({"actor": "/tmp"}, {"name": "vllm_colocate"}, "needs generation=vllm_server"),  # a local directory: available
    ({"actor": "self"}, {"name": "vllm_colocate", "importance_sampling_mode": "token_mask"}, "algo.correction=jackpot|tis|none"),
    ({"actor": "self"}, {"name": "vllm_server", "importance_sampling_correction": False}, "not used by algo=jackpot"),
    ({"actor": "self"}, {"name": "continuous_batching"}, "generation=hf or a vLLM mode"),
])  # fmt: skip
def test_bad_generation_configs_are_one_clear_line(fields, generation, message):
    with pytest.raises(ConfigError, match=message) as err:
        Jackpot(**fields).check_generation(GenerationConfig(**generation))
    assert "\n" not in str(err.value)


def test_defaults_check_and_hand_trl_no_correction_of_its_own():
    algo = Jackpot()
    algo.check(world_size=1)
    algo.check_generation(GenerationConfig())
    kwargs = algo.trl_kwargs()
    assert "actor" not in kwargs and "obrs_lambda" not in kwargs
    assert algo.generation_fields(GenerationConfig()) == {"use_vllm": False}
    vllm = GenerationConfig(name="vllm_colocate")
    assert Jackpot(actor="self").generation_fields(vllm)["vllm_importance_sampling_correction"] is False
    tis = Jackpot(actor="self", correction="tis", max_weight=2.0).generation_fields(vllm)
    assert tis["vllm_importance_sampling_correction"] is True and tis["vllm_importance_sampling_clip_max"] == 2.0
    assert tis["vllm_importance_sampling_mode"] == "token_truncate" and tis["vllm_importance_sampling_clip_min"] is None


def test_an_actor_with_another_tokenizer_is_one_clear_line():
    other = byte_tokenizer()
    other.add_special_tokens({"additional_special_tokens": ["<|tool|>"]})
    with pytest.raises(ConfigError, match="different vocabulary") as err:
        check_same_vocabulary(byte_tokenizer(), other, "other")
    assert "\n" not in str(err.value)
    check_same_vocabulary(byte_tokenizer(), byte_tokenizer(), "same")


def test_log_acceptance_does_not_overflow():
    a = log_acceptance(torch.tensor([0.0, -200.0]), torch.tensor([-200.0, 0.0]), 1.0).exp()
    assert a.tolist() == [1.0, pytest.approx(math.exp(-200.0))]
    ratio = truncated_importance_weights(torch.tensor([[0.0, -200.0]]), torch.tensor([[-200.0, 0.0]]), torch.ones(1, 2), 3.0)
    assert ratio.tolist() == [[3.0, pytest.approx(0.0)]]


# ---------------------------------------------------------------- the CLI, every environment


ENVS = {
    "generalpoints": ["env=generalpoints", "env.num_cards=3", "env.target=12", "env.prompt_style=short", "env.train_size=16"],
    "livecode": ["env=livecode", "env.time_limit=2.0", "model.max_position_embeddings=4096"],
    "math": ["env=math", "env.difficulty=1", "env.train_size=16", "env.eval_size=4"],
    "synlogic": ["env=synlogic", "env.difficulty=1", "env.train_size=16", "env.eval_size=4"],
}


def test_a_stale_copy_of_the_policy_is_refreshed_every_actor_lag_steps():
    trainer, model = make_trainer()
    assert trainer.rollout_actor is None, "actor self with lag 0 is the policy itself"
    trainer = JackpotGRPOTrainer(model=model, reward_funcs=trainer.reward_funcs, args=trainer.args, train_dataset=trainer.train_dataset,
                                 processing_class=trainer.processing_class, actor_lag=2)  # fmt: skip
    actor = trainer.rollout_actor
    assert actor is not None and actor is not model
    prompts = [[5, 6, 7]] * 4
    for step in range(5):  # the policy moves on every step; the actor generates, then is refreshed when due
        trainer.state.global_step = step
        with torch.no_grad():
            model.lm_head.weight.add_(1.0)
        before = actor.lm_head.weight.clone()
        trainer._generate_single_turn(prompts, None, {}, 1)
        refreshed = not torch.equal(actor.lm_head.weight, before)
        assert refreshed == (step in (2, 4)), step
        if refreshed:
            assert torch.equal(actor.lm_head.weight, model.lm_head.weight)


def test_sequence_level_keeps_or_drops_whole_completions_in_the_trainer():
    inputs = batch()
    valid = inputs["completion_mask"].bool()
    trainer, _ = make_trainer(actor="tiny", level="sequence", obrs_lambda=1.2)
    out = trainer._apply_jackpot(dict(inputs))
    keep = out["tool_mask"].bool()
    for row in range(4):
        assert len(set(keep[row][valid[row]].tolist())) == 1
        assert len(set(out["jackpot_rho"][row][valid[row]].tolist())) == 1
    assert trainer._metrics["train"]["jackpot/kappa"] == [1.0]


def test_vllm_gets_the_policys_weights_every_actor_lag_steps_after_generating():
    trainer, _ = make_trainer()
    trainer.actor_lag, trainer.use_vllm, trainer._last_loaded_step = 2, True, -1
    trainer.vllm_generation = FakeVLLM([[3]] * 4, [[[-0.1]]] * 4, [[[3]]] * 4)
    syncs = []
    for step in range(5):
        trainer.state.global_step = step
        trainer._generate_single_turn([[1, 2]] * 4, None, {}, 1)
        syncs.append(trainer.vllm_generation.syncs)
    assert syncs == [0, 0, 1, 1, 2], "rollouts from a policy 1 to 2 steps old"
    trainer.vllm_serves_actor = True  # a separate actor on the server never receives the policy's weights
    for step in range(5, 9):
        trainer.state.global_step = step
        trainer._generate_single_turn([[1, 2]] * 4, None, {}, 1)
    assert trainer.vllm_generation.syncs == 2
