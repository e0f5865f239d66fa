from math import comb

import numpy as np
import pytest

from rlexp.evaluate import pass_at_k


def test_pass_at_k_values_from_the_spec():
    assert pass_at_k(10, 0, 1) == 0
    assert pass_at_k(10, 10, 5) == 1
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)


@pytest.mark.parametrize("n,c,k", [(8, 3, 2), (16, 5, 4), (20, 1, 10), (7, 6, 3)])
def test_pass_at_k_equals_the_combinatorial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_is_monotone_in_k_and_c():
    assert all(pass_at_k(16, 4, k) <= pass_at_k(16, 4, k + 1) for k in range(1, 16))
    assert all(pass_at_k(16, c, 4) <= pass_at_k(16, c + 1, 4) for c in range(16))


def test_pass_at_k_refuses_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_prompts_that_could_not_be_scored_are_left_out_and_counted():
    from types import SimpleNamespace

    from rlexp.envs.base import Score
    from rlexp.evaluate import _summary

    good, bad, broken = Score(1.0, True, ""), Score(0.0, False, "x"), Score(None, False, "")
    cfg = SimpleNamespace(num_samples=2, k=[1])
    metrics = _summary([[good, bad], [broken, broken], [bad, bad]], cfg)
    assert metrics["n_prompts"] == 2 and metrics["n_unscored"] == 1
    assert metrics["success"] == 0.25 and metrics["pass@1"] == 0.25 and metrics["mean_reward"] == 0.25


# data-parallel evaluation: a rank's share of the prompts, gathered, gives the metrics of one process


def text_scored(env, max_attempts: int = 1):
    """`env` scoring a completion by its text alone (a crc32 of it), so every metric moves with every sample."""
    import zlib

    from rlexp.envs.base import Score

    def score_batch(texts, rows):
        crcs = [zlib.crc32(t.encode()) for t in texts]
        return [Score(c % 100 / 100, c % 3 == 0, "try again", {"category": f"c{c % 4}"}) for c in crcs]

    env.max_attempts = max_attempts
    env.score_batch = score_batch
    return env


def sharded(generator, env, cfg, seed: int, ranks: int) -> dict:
    """The metrics rank 0 computes from the shares of `ranks` ranks, each sampled here in turn."""
    from rlexp.evaluate import evaluate, share

    others = [share(generator, env, cfg, seed, (rank, ranks)) for rank in range(1, ranks)]
    return evaluate(generator, None, env, cfg, seed, (0, ranks), lambda mine: mine + others)


def tiny_setup(max_attempts: int = 1, **eval_keys):
    from types import SimpleNamespace

    from rlexp import envs, models

    tokenizer = models.byte_tokenizer()
    model = models.build_tiny(models.ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tokenizer)
    env = text_scored(envs.make("generalpoints", num_cards=2, target=5, eval_size=5), max_attempts)
    keys = dict(splits=["id", "ood"], num_prompts=5, num_samples=2, k=[1, 2], temperature=1.0, max_new_tokens=6, batch_size=4)
    return model, tokenizer, env, SimpleNamespace(**{**keys, **eval_keys})


@pytest.mark.parametrize("max_attempts", [1, 2])
def test_shares_of_two_and_three_ranks_gathered_equal_one_process(max_attempts):
    """Chunks of batch_size // num_samples = 2 prompts, seeded by their place in the split: 5 prompts are 3 chunks."""
    from rlexp.evaluate import HFGenerator, evaluate

    model, tokenizer, env, cfg = tiny_setup(max_attempts)
    generator = HFGenerator(model, tokenizer, cfg)
    whole = evaluate(generator, None, env, cfg, seed=1)
    assert whole["id"]["n_prompts"] == 5 and whole["id"]["n_samples"] == 2
    assert sharded(generator, env, cfg, 1, 2) == whole
    assert sharded(generator, env, cfg, 1, 3) == whole  # a rank of its own for every chunk
    assert sharded(generator, env, cfg, 1, 4) == whole  # and one rank with nothing to do
    assert evaluate(generator, None, env, cfg, seed=2) != whole, "another seed, other samples"


def test_chunk_seeds_depend_on_the_run_seed_the_split_and_the_place():
    from rlexp.evaluate import chunk_seed

    seeds = {chunk_seed(seed, split, i) for seed in (0, 1) for split in ("id", "ood") for i in (0, 2)}
    assert len(seeds) == 8 and chunk_seed(0, "id", 2) == chunk_seed(0, "id", 2)
    assert all(0 <= s < 2**32 for s in seeds)


def test_continuous_batching_runs_on_a_cpu_and_its_shares_equal_one_process():
    """transformers' generate_batch, a chunk of 2 prompts per call with the chunk's seed (about a second per call on
    a CPU, its thread's polling: slow next to `generate` on the tiny model, but it runs)."""
    from rlexp.evaluate import ContinuousBatchingGenerator, evaluate

    model, tokenizer, env, cfg = tiny_setup(num_prompts=3, splits=["id"])
    generator = ContinuousBatchingGenerator(model, tokenizer, cfg)
    whole = evaluate(generator, None, env, cfg, seed=1)
    assert whole["id"]["n_prompts"] == 3
    assert sharded(generator, env, cfg, 1, 2) == whole


@pytest.mark.parametrize("max_attempts", [1, 2])
def test_vllm_samples_a_split_in_one_call_each_prompt_seeded_by_its_place(fake_vllm, max_attempts):
    """One generate call per split (per round of episodes) with every prompt; each prompt's own SamplingParams,
    n = num_samples and its seed: the same for the same run seed, another for another, whichever rank asks."""
    from rlexp.evaluate import VLLMGenerator, chunk_seed, evaluate

    _, tokenizer, env, cfg = tiny_setup(max_attempts)
    generator = VLLMGenerator(fake_vllm.LLM(model="tiny", seed=0), tokenizer, cfg)
    whole = evaluate(generator, None, env, cfg, seed=1)
    calls = [e for e in fake_vllm.RECORD if e["event"] == "generate"]
    if max_attempts == 1:
        assert len(calls) == 2 and [c["num_prompts"] for c in calls] == [5, 5]
        assert all(p["n"] == 2 and p["max_tokens"] == 6 and p["temperature"] == 1.0 for c in calls for p in c["sampling"])
        assert [p["seed"] for p in calls[0]["sampling"]] == [chunk_seed(1, "id", i) for i in range(5)]
    else:  # every episode its own request, round after round, while some are open
        assert len(calls) == 4 and [c["num_prompts"] for c in calls[::2]] == [10, 10]
        assert all(p["n"] == 1 for c in calls for p in c["sampling"])
        assert calls[0]["sampling"][3]["seed"] == chunk_seed(chunk_seed(1, "id", 1), 1, 1)  # prompt 1, sample 1, try 1
    seeds = [p["seed"] for c in calls for p in c["sampling"]]
    assert len(set(seeds)) == len(seeds)
    fake_vllm.RECORD.clear()
    assert evaluate(generator, None, env, cfg, seed=1) == whole
    assert [p["seed"] for c in fake_vllm.RECORD for p in c["sampling"]] == seeds
    fake_vllm.RECORD.clear()
    assert evaluate(generator, None, env, cfg, seed=2) != whole
    assert not set(seeds) & {p["seed"] for c in fake_vllm.RECORD for p in c["sampling"]}
    assert sharded(generator, env, cfg, 1, 2) == whole


def test_vllm_metrics_are_those_of_the_engines_outputs(fake_vllm):
    """Each sample scored is the engine's answer, decoded: the fake's drawn tokens, scored here by hand."""
    import zlib

    from rlexp.evaluate import VLLMGenerator, evaluate

    _, tokenizer, env, cfg = tiny_setup(splits=["id"])
    generator = VLLMGenerator(fake_vllm.LLM(model="tiny", seed=0), tokenizer, cfg)
    metrics = evaluate(generator, None, env, cfg, seed=1)["id"]
    (call,) = [e for e in fake_vllm.RECORD if e["event"] == "generate"]
    again = fake_vllm.LLM(model="tiny").generate(
        [{"prompt_token_ids": ids} for ids in call["prompts"]],
        [fake_vllm.SamplingParams(**p) for p in call["sampling"]],
    )
    texts = [tokenizer.decode(o.token_ids, skip_special_tokens=True) for request in again for o in request.outputs]
    assert metrics["success"] == pytest.approx(np.mean([zlib.crc32(t.encode()) % 3 == 0 for t in texts]))
    assert metrics["mean_reward"] == pytest.approx(np.mean([zlib.crc32(t.encode()) % 100 / 100 for t in texts]))
