"""The `generation` group in training (rlexp/generation.py): its mapping to TRL's fields, its one-line errors, the
seed of each vLLM engine, every RL algorithm's vLLM path through TRL's own code against tests/fake_vllm, the trainer
side of a vLLM server against a recording client, the server's process, and continuous batching on the CPU."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlexp import envs, models
from rlexp.algos import algo_class
from rlexp.checkpoints import Interrupted, StopSignals
from rlexp.errors import ConfigError
from rlexp.generation import VLLMServer, engine_seed, seeded_engines, server_command, split_gpus, trl_fields
from rlexp.schema import GenerationConfig, ModelConfig

ROOT = Path(__file__).resolve().parent.parent
GAME = {"num_cards": 3, "target": 12, "prompt_style": "short", "train_size": 8}
SMALL_MODEL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def trainer_for(name, generation, tmp_path, seed=0, max_attempts=1, **fields):
    """algo=`name` on a small game and the small tiny model, generating as `generation` says, built as a stage is."""
    defaults = {"per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 8, "max_steps": 2,
                "learning_rate": 1e-3}  # fmt: skip
    algo = algo_class(name)(name=name, **{**defaults, **fields})
    algo.check(world_size=1)
    algo.check_generation(generation)
    tokenizer = models.byte_tokenizer()
    torch.manual_seed(seed)
    model = models.build_tiny(SMALL_MODEL, tokenizer)
    args = algo.training_args(tmp_path / f"{name}-{seed}", seed, "fp32", generation=generation)
    with seeded_engines(seed):
        return algo.build_trainer(model, tokenizer, envs.make("generalpoints", max_attempts=max_attempts, **GAME), args)


def events(record, kind):
    return [i for i, entry in enumerate(record) if entry["event"] == kind]


# ---------------------------------------------------------------- the mapping and the checks (no model)


def test_each_mode_sets_trls_fields_and_the_algorithms_own_correction():
    assert trl_fields(GenerationConfig(), "sequence_mask", 3.0) == {"use_vllm": False}
    assert trl_fields(GenerationConfig(name="continuous_batching"), "sequence_mask", 3.0) == {
        "use_vllm": False, "use_transformers_continuous_batching": True}  # fmt: skip
    colocate = trl_fields(GenerationConfig(name="vllm_colocate", tensor_parallel_size=2), "token_truncate", 2.0)
    assert colocate["vllm_mode"] == "colocate" and colocate["vllm_tensor_parallel_size"] == 2
    assert colocate["vllm_importance_sampling_mode"] == "token_truncate" and colocate["vllm_importance_sampling_clip_max"] == 2.0
    server = trl_fields(GenerationConfig(name="vllm_server", server_port=8123, importance_sampling_clip_max=5.0), "x", 2.0)
    assert server["vllm_mode"] == "server" and server["vllm_server_port"] == 8123 and "vllm_gpu_memory_utilization" not in server
    assert server["vllm_importance_sampling_clip_max"] == 5.0
    grpo, sdpo = algo_class("grpo")(name="grpo"), algo_class("sdpo")(name="sdpo")
    vllm = GenerationConfig(name="vllm_colocate")
    assert grpo.generation_fields(vllm)["vllm_importance_sampling_mode"] == "sequence_mask"  # TRL's
    assert sdpo.generation_fields(vllm)["vllm_importance_sampling_mode"] == "token_truncate"  # the SDPO authors'
    for name in ("sft", "iwsft", "pear"):  # no generation in training: the group means nothing to them
        assert algo_class(name)(name=name).generation_fields(vllm) == {}


@pytest.mark.parametrize("fields, message", [
    ({"name": "sglang"}, "generation.name=sglang is not one of"),
    ({"gpu_memory_utilization": 1.5}, "must be in \\(0, 1\\]"),
    ({"importance_sampling_mode": "tis"}, "importance_sampling_mode=tis"),
    ({"server_port": 70000}, "is not a port"),
    ({"name": "vllm_server", "server_gpus": ["0", "1"]}, "tensor_parallel_size=1"),
    ({"name": "vllm_server", "enable_sleep_mode": True}, "needs generation=vllm_colocate"),
])  # fmt: skip
def test_bad_generation_keys_are_one_line(fields, message):
    with pytest.raises(ConfigError, match=message) as err:
        GenerationConfig(**fields).check()
    assert "\n" not in str(err.value)


def test_without_vllm_asking_for_it_names_what_to_install_before_torch_loads():
    code = (
        "import sys\nfrom rlexp import generation\nfrom rlexp.schema import GenerationConfig\n"
        "try:\n    generation.check(GenerationConfig(name='vllm_colocate'), False, 1)\n"
        "except Exception as exc:\n    print(exc)\nprint('torch' in sys.modules, 'trl' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.stdout.splitlines() == ['generation=vllm_colocate needs vLLM, which is not installed here: pip install "trl[vllm]"',
                                        "False False"], done.stderr  # fmt: skip


def test_a_pipeline_checks_vllm_for_its_rl_stage_only(fake_vllm):
    from hydra import compose, initialize_config_dir

    from rlexp.config import register_schemas, validate
    from rlexp.schema import CONF_DIR

    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        validate(compose(config_name="config", overrides=["experiment=sft_then_grpo", "generation=vllm_colocate"]))
        validate(compose(config_name="config", overrides=["algo=sft", "generation=vllm_colocate"]))
        cfg = compose(config_name="config", overrides=["algo=sdpo", "generation=continuous_batching"])
        with pytest.raises(ConfigError, match="algo=sdpo .* no continuous batching"):
            validate(cfg)


def test_engine_seeds_differ_per_run_seed_and_per_group():
    seeds = {(s, g): engine_seed(s, g) for s in range(3) for g in range(4)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= v < 2**32 for v in seeds.values()) and engine_seed(1, 0) == seeds[(1, 0)]


# ---------------------------------------------------------------- every RL algorithm through TRL's vLLM path


def test_the_run_seed_reaches_the_colocated_engine_and_its_rollouts(fake_vllm, tmp_path):
    from trl.generation.vllm_generation import VLLMGeneration

    generation = GenerationConfig(name="vllm_colocate")
    trainers = [trainer_for("grpo", generation, tmp_path, seed=seed) for seed in (0, 1)]
    inits = [e for e in fake_vllm.RECORD if e["event"] == "init"]
    assert [e["seed"] for e in inits] == [engine_seed(0, 0), engine_seed(1, 0)]
    prompts = [[5, 6, 7, 8, 9, 10]] * 2
    rollouts = [t.vllm_generation.generate(prompts=prompts, images=None, num_generations=2)[1] for t in trainers]
    assert rollouts[0] != rollouts[1]
    # what TRL does alone (huggingface/trl PR #7040): the engine of every run is seeded with its rank only
    VLLMGeneration(model=trainers[1].model, accelerator=trainers[1].accelerator, processing_class=trainers[1].processing_class)
    assert fake_vllm.RECORD[-1]["event"] == "init" and fake_vllm.RECORD[-1]["seed"] == 0


@pytest.mark.parametrize("name, logprobs", [("grpo", 0), ("luffy", 0), ("sdpo", 0), ("jackpot", 20)])
def test_each_algorithm_trains_with_a_colocated_engine(fake_vllm, tmp_path, name, logprobs):
    extra = {"actor": "self"} if name == "jackpot" else {}
    trainer = trainer_for(name, GenerationConfig(name="vllm_colocate"), tmp_path, seed=3, **extra)
    seen = []
    if name == "luffy":  # the demonstration rows of each group: no sampling log-probs, so ratio 1
        score = trainer._generate_and_score_completions
        trainer._generate_and_score_completions = lambda inputs: seen.append(score(inputs)) or seen[-1]
    if name == "sdpo":
        prepare = trainer._prepare_training_batch
        trainer._prepare_training_batch = lambda inputs: seen.append(prepare(inputs)) or seen[-1]
    trainer.train()
    record = fake_vllm.RECORD
    assert trainer.state.global_step == 2
    assert [e["seed"] for e in record if e["event"] == "init"] == [engine_seed(3, 0)]
    calls = [record[i] for i in events(record, "generate")]
    assert len(calls) == 2 and all(c["sampling"]["logprobs"] == logprobs for c in calls)
    loads, generates = events(record, "load_weights"), events(record, "generate")
    # the policy's weights reach the engine before each generation batch, i.e. after each optimiser step
    assert any(i < generates[0] for i in loads) and any(generates[0] < i < generates[1] for i in loads)
    logged = {k: v for row in trainer.state.log_history for k, v in row.items()}
    assert math.isfinite(logged["train_loss"])
    if name == "luffy":
        for output in seen:
            ratio = output["importance_sampling_ratio"].reshape(len(output["demo_mask"]), -1)
            assert output["demo_mask"].any() and torch.all(ratio[output["demo_mask"]] == 1.0)
            assert torch.all(ratio[~output["demo_mask"]] != 1.0)  # the fake's log-probs are not the policy's
    if name == "sdpo":
        weights = [batch["rollout_is_weights"] for batch in seen]
        assert all(w.shape == b["completion_ids"].shape and (w <= 2.0).all() for w, b in zip(weights, seen))
        assert "sampling/importance_sampling_ratio/mean" in logged


def test_sleep_mode_frees_the_engine_between_generations(fake_vllm, tmp_path):
    trainer = trainer_for("grpo", GenerationConfig(name="vllm_colocate", enable_sleep_mode=True), tmp_path, max_steps=1)
    trainer.train()
    kinds = [e["event"] for e in fake_vllm.RECORD if e["event"] != "load_weights"]
    assert fake_vllm.RECORD[0]["enable_sleep_mode"] is True
    # asleep from its start; woken for the weights and the KV cache; asleep again after generating
    assert kinds == ["init", "sleep", "wake_up", "reset_prefix_cache", "wake_up", "generate", "sleep"]


@pytest.mark.parametrize("name", ["grpo", "sdpo"])
def test_multi_turn_episodes_generate_each_attempt_with_the_engine(fake_vllm, tmp_path, name):
    trainer = trainer_for(name, GenerationConfig(name="vllm_colocate"), tmp_path, max_attempts=2, max_steps=1)
    seen = []
    if name == "sdpo":
        prepare = trainer._prepare_training_batch
        trainer._prepare_training_batch = lambda inputs: seen.append(prepare(inputs)) or seen[-1]
    trainer.train()
    calls = [e for e in fake_vllm.RECORD if e["event"] == "generate"]
    assert trainer.state.global_step == 1 and len(calls) == 2  # the first attempts, then the failed ones again
    assert all(c["sampling"]["logprobs"] == 0 for c in calls)
    if name == "sdpo":  # the feedback turns were not sampled: no weight on them
        batch = seen[0]
        feedback = (batch["completion_mask"] * (1 - batch["env_mask"])).bool()
        assert feedback.any() and torch.all(batch["rollout_is_weights"][feedback] == 1.0)


def test_sdpo_rollout_weights_are_trls_four_forms():
    from rlexp.trainers.sdpo import rollout_is_weights

    old = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, 0.0]])
    sampled = torch.tensor([[-1.0, -1.0, float("nan")], [0.0, -3.0, -5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    e = math.e
    token = rollout_is_weights(old, sampled, mask, "token_truncate", 2.0)
    assert torch.allclose(token, torch.tensor([[2.0, 1.0, 1.0], [1 / e, 2.0, 1.0]]))  # NaN and padding: ratio 1
    assert torch.allclose(
        rollout_is_weights(old, sampled, mask, "token_mask", 2.0), torch.tensor([[0.0, 1.0, 1.0], [1 / e, 0.0, 1.0]])
    )
    assert torch.allclose(rollout_is_weights(old, sampled, mask, "sequence_truncate", 2.0), torch.tensor([[2.0], [2.0]]))
    assert torch.allclose(rollout_is_weights(old, sampled, mask, "sequence_mask", 3.0), torch.tensor([[e], [0.0]]))


def test_sdpo_multiplies_its_distillation_and_policy_terms_by_the_weights(fake_vllm, tmp_path):
    trainer = trainer_for("sdpo", GenerationConfig(name="vllm_colocate"), tmp_path, distillation_weight=0.5, loss_type="grpo")
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    batch = trainer._prepare_training_batch(list(trainer.train_dataset.select(range(2))) * 2)
    assert "rollout_is_weights" in batch
    losses = {}
    for scale in (1.0, 0.5):
        inputs = {**batch, "rollout_is_weights": torch.full_like(batch["completion_mask"], scale, dtype=torch.float32)}
        losses[scale] = trainer.compute_loss(trainer.model, inputs).item()
    assert losses[1.0] != 0 and losses[0.5] == pytest.approx(0.5 * losses[1.0], rel=1e-4)


# ---------------------------------------------------------------- generation=vllm_server: the trainer side


class RecordingClient:
    """TRL's VLLMClient as the trainer uses it, recording each call; it answers like the fake engine."""

    calls: list = []

    def __init__(self, base_url=None, group_port=51216, connection_timeout=0.0, **kwargs):
        self.calls.append(("init", base_url, group_port))
        self.engine = __import__("vllm").LLM(model="server", seed=7)

    def init_communicator(self, device=0):
        self.calls.append(("init_communicator",))

    def get_server_info(self):
        return {"model_config": {"logprobs_mode": "processed_logprobs"}}

    def generate(self, prompts, n=1, logprobs=0, max_tokens=16, **sampling):
        self.calls.append(("generate", len(prompts), n, logprobs))
        from trl.generation.vllm_generation import extract_logprobs
        from vllm import SamplingParams

        outputs = self.engine.generate(
            [{"prompt_token_ids": p} for p in prompts], SamplingParams(n=n, max_tokens=max_tokens, logprobs=logprobs)
        )
        lps, ids = extract_logprobs(outputs)
        return {"prompt_ids": [o.prompt_token_ids for o in outputs], "completion_ids": [c.token_ids for o in outputs for c in o.outputs],
                "logprobs": lps, "logprob_token_ids": ids}  # fmt: skip

    def update_named_params(self, metadata, named_params):
        self.calls.append(("update", sum(1 for _ in named_params)))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.mark.parametrize("name", ["grpo", "luffy", "sdpo", "jackpot"])
def test_a_server_generates_and_gets_the_weights_after_each_step(fake_vllm, tmp_path, monkeypatch, name):
    import trl.generation.vllm_generation as trl_vllm

    monkeypatch.setattr(trl_vllm, "VLLMClient", RecordingClient, raising=False)
    RecordingClient.calls = []
    generation = GenerationConfig(name="vllm_server", server_port=8765, group_port=8766)
    extra = {}
    if name == "jackpot":  # a separate actor: the server runs it, and never gets the policy's weights
        actor = tmp_path / "actor"
        models.byte_tokenizer().save_pretrained(actor)
        extra = {"actor": str(actor)}
    trainer = trainer_for(name, generation, tmp_path, **extra)
    trainer.train()
    kinds = [c[0] for c in RecordingClient.calls]
    assert RecordingClient.calls[0] == ("init", "http://127.0.0.1:8765", 8766)
    generates = [c for c in RecordingClient.calls if c[0] == "generate"]
    assert len(generates) == 2 and all(c[1:] == (2, 2, 20 if name == "jackpot" else 0) for c in generates)
    first, second = [i for i, k in enumerate(kinds) if k == "generate"]
    if name == "jackpot":
        assert "update" not in kinds
    else:
        assert "update" in kinds[:first] and "update" in kinds[first:second]
    assert trainer.state.global_step == 2


# ---------------------------------------------------------------- generation=vllm_server: the server's process

STAND_IN = """
import http.server, sys, time
time.sleep(float(sys.argv[2]))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def stand_in(port, delay=0.3):
    return [sys.executable, "-c", STAND_IN, str(port), str(delay)]


def test_the_server_starts_answers_and_stops(tmp_path):
    from rlexp.generation import free_port

    port, said = free_port(), []
    server = VLLMServer(stand_in(port), ["3"], f"http://127.0.0.1:{port}/health", tmp_path / "server.log", 60, said.append)
    with server:
        assert server.healthy() and server.process.poll() is None
    assert server.process.poll() is not None and not server.healthy()
    assert "starting the vLLM server on GPU(s) 3" in said[0] and "answers" in said[1] and "stopped" in said[-1]
    assert "serving" in (tmp_path / "server.log").read_text()


def test_a_server_that_dies_is_one_error_with_its_log(tmp_path):
    crash = [sys.executable, "-c", "import sys; print('CUDA out of memory', flush=True); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="exited with code 3") as err:
        with VLLMServer(crash, ["0"], "http://127.0.0.1:9/health", tmp_path / "log", 60, lambda line: None):
            pass
    assert "CUDA out of memory" in str(err.value)


def test_the_server_stops_when_training_fails_or_the_run_is_stopped(tmp_path, monkeypatch):
    from rlexp.generation import free_port
    from rlexp.modes import train

    ports = iter([free_port(), free_port()])
    monkeypatch.setattr(train, "server_command", lambda model, generation, port, seed: stand_in(port, delay=0.5))
    stop = StopSignals(lambda line: None)
    run = SimpleNamespace(state=SimpleNamespace(is_main_process=True), cfg=SimpleNamespace(seed=0), run_dir=tmp_path, stop=stop)
    algo = algo_class("grpo")(name="grpo")
    generation = GenerationConfig(name="vllm_server", server_port=next(ports))
    servers = []
    monkeypatch.setattr(train, "VLLMServer", lambda *a: servers.append(VLLMServer(*a)) or servers[-1])
    with pytest.raises(ValueError, match="a training step failed"):
        with train.stage_server(run, "grpo", algo, generation, "some/model") as served:
            assert served.server_port == generation.server_port and served.group_port > 0 and servers[0].healthy()
            raise ValueError("a training step failed")
    assert servers[0].process.poll() is not None
    stop.signum = 15  # SIGTERM while the server loads its model: the run stops, the server with it
    with pytest.raises(Interrupted):
        with train.stage_server(run, "grpo", algo, dataclasses.replace(generation, server_port=next(ports)), "some/model"):
            pass
    assert servers[1].process.poll() is not None


def test_the_run_trains_on_the_gpus_the_server_leaves(monkeypatch):
    from hydra import compose, initialize_config_dir

    from rlexp.config import register_schemas
    from rlexp.launch import server_gpus_apart
    from rlexp.schema import CONF_DIR

    register_schemas()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["generation=vllm_server", "launcher=ddp"])
        sft = compose(config_name="config", overrides=["generation=vllm_server", "algo=sft"])
    with server_gpus_apart(cfg):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and list(cfg.generation.server_gpus) == ["2"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2"
    with server_gpus_apart(sft):  # no stage generates: no server, every GPU trains
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2" and list(sft.generation.server_gpus) == []


def test_the_server_command_and_the_gpus_it_takes():
    command = server_command(
        "ckpt/dir", GenerationConfig(name="vllm_server", tensor_parallel_size=2, max_model_length=4096), 8001, 5
    )
    assert command[1:4] == ["-m", "trl.cli.main", "vllm-serve"]
    text = " ".join(command)
    assert "--model ckpt/dir" in text and "--port 8001" in text and "--tensor_parallel_size 2" in text
    assert "--max_model_len 4096" in text and command[-2:] == ["--seed", "5"]
    assert split_gpus(["0", "1", "2", "3"], GenerationConfig(name="vllm_server", tensor_parallel_size=2)) == (
        ["2", "3"],
        ["0", "1"],
    )
    assert split_gpus(["0", "1", "2"], GenerationConfig(name="vllm_server", server_gpus=["0"])) == (["0"], ["1", "2"])
    with pytest.raises(ConfigError, match="leaves none to train on"):
        split_gpus(["0"], GenerationConfig(name="vllm_server"))
    with pytest.raises(ConfigError, match="which the run does not see"):
        split_gpus(["0", "1"], GenerationConfig(name="vllm_server", server_gpus=["5"]))


# ---------------------------------------------------------------- continuous batching, on the CPU


def test_continuous_batching_trains_grpo_on_the_cpu(tmp_path):
    # a small KV cache: sized from memory (TRL's default, half of it), continuous batching allocates gigabytes on a CPU
    cache = {"transformers_continuous_batching_config": {"num_blocks": 16, "max_batch_tokens": 256}}
    started = time.time()
    trainer = trainer_for("grpo", GenerationConfig(name="continuous_batching"), tmp_path, trl=cache)
    assert trainer.use_transformers_continuous_batching
    trainer.train()
    assert trainer.state.global_step == 2, time.time() - started
    logged = {k: v for row in trainer.state.log_history for k, v in row.items()}
    assert logged["completions/mean_length"] > 0


# ---------------------------------------------------------------- two ranks, two engines (a CLI run)


@pytest.mark.slow
def test_two_ranks_seed_their_engines_apart(tmp_path):
    from conftest import SMALL, THREADS, ok

    log = tmp_path / "vllm.jsonl"
    argv = [sys.executable, "-m", "rlexp", "algo=grpo", "generation=vllm_colocate", "launcher=ddp", "launcher.num_processes=2",
            *SMALL, "env.num_cards=3", "env.target=12", "env.prompt_style=short", "algo.max_steps=1", "eval.before=false",
            "algo.per_device_train_batch_size=2", "algo.num_generations=2", "algo.max_completion_length=8", "seed=4",
            "eval.generation=hf",  # the training engines only
            "env.max_attempts=2",  # episodes: the ranks agree on each round's width (a collective over gloo)
            f"threads={THREADS}", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests' / 'fake_vllm'}{os.pathsep}{ROOT}", "FAKE_VLLM_LOG": str(log)}
    ok(subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    inits = [e for e in entries if e["event"] == "init"]
    assert sorted((e["rank"], e["seed"]) for e in inits) == [(0, engine_seed(4, 0)), (1, engine_seed(4, 1))]
    assert {e["rank"] for e in entries if e["event"] == "generate"} == {0, 1}
    # the fake's answers fail: each rank plays both rounds of its 2 episodes
    assert sorted((e["rank"], e["num_prompts"]) for e in entries if e["event"] == "generate") == [(0, 2), (0, 2), (1, 2), (1, 2)]


@pytest.mark.parametrize("name", ["grpo", "sdpo"])
def test_multi_turn_rounds_ask_a_server_for_one_completion_per_transcript(fake_vllm, tmp_path, monkeypatch, name):
    import trl.generation.vllm_generation as trl_vllm

    monkeypatch.setattr(trl_vllm, "VLLMClient", RecordingClient, raising=False)
    RecordingClient.calls = []
    generation = GenerationConfig(name="vllm_server", server_port=8765, group_port=8766)
    trainer = trainer_for(name, generation, tmp_path, max_attempts=2, max_steps=1)
    trainer.train()
    # the fake's answers fail: two rounds over the 4 episodes, each transcript its own prompt (n=1), as TRL's server
    # keeps only every n-th prompt it is sent
    generates = [c[1:3] for c in RecordingClient.calls if c[0] == "generate"]
    assert generates == [(4, 1), (4, 1)]
