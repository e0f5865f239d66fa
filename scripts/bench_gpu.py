"""rlexp's GRPO step beside a bare TRL GRPOTrainer, and what SDPO's EMA teacher and Jackpot's actor copy cost.

    python scripts/bench_gpu.py                          # or: make bench (every scripts/bench_*.py)
    python scripts/bench_gpu.py --steps 1 --repeats 2    # shorter (repeats even: each arm goes first as often)

On a GPU the model is a Qwen2 of Qwen2.5-0.5B's sizes (494M parameters), built from a config with a byte tokenizer
grown to its 151,936-token vocabulary (no download), fp32 weights under bf16 autocast (model.dtype=float32 with
precision=bf16: rlexp's default on a GPU), sdpa attention; on a CPU it is model=tiny (one thread). It imports torch,
transformers, accelerate, datasets, trl, omegaconf and hydra-core (rlexp's registry; not its command line), and
neither DeepSpeed, vLLM, flash-attn nor Liger.

1. GRPO step. Two arms on the same weights (reset before every call), the same GeneralPoints prompts and reward (the
   environment's score), the same batch and generation settings and seed, so they generate the same completions:
     trl     trl.GRPOTrainer with a GRPOConfig and a reward function written as a TRL user writes them
     rlexp   rlexp.algos.grpo.GRPO(...).build_trainer, its config from algo.training_args (rlexp's own path)
   The fields where the two TRL configs differ are printed (the aim: none but save_steps and save_total_limit, which
   do nothing here: neither arm saves checkpoints). Each repeat runs both arms, `--steps` optimizer steps each, in
   alternating order; the first repeat warms up and is not counted. Printed per arm: median seconds per step,
   generated tokens per second (completion tokens over generation seconds), trained tokens per second (prompt and
   completion tokens over the rest of the step), peak GPU memory; and rlexp / trl, the throughput ratio (trl's step
   time over rlexp's, paired per repeat, median). Target: >= 0.97. With vLLM installed, the same two arms generate
   with a colocated vLLM engine too.
2. Whole model copies. Bytes of the parameters of SDPO's EMA teacher and of Jackpot's stale actor copy
   (algo.actor=self, actor_lag=1), and one step of each with the copy on the GPU and offloaded
   (algo.teacher_offload, algo.actor_offload): seconds per step and, on a GPU, peak memory.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import os
import statistics
import tempfile
import time

import torch
from transformers import PrinterCallback, ProgressCallback, Qwen2Config, Qwen2ForCausalLM, TrainerCallback, set_seed
from transformers.trainer_utils import SaveStrategy
from trl import GRPOConfig, GRPOTrainer

from rlexp import envs
from rlexp.algos.grpo import GRPO
from rlexp.algos.jackpot import Jackpot
from rlexp.algos.sdpo import SDPO
from rlexp.generation import seeded_engines
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer
from rlexp.schema import GenerationConfig
from rlexp.trainers.offload import parameter_bytes

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
PRECISION = "bf16" if CUDA and torch.cuda.is_bf16_supported() else "fp32"
# Qwen/Qwen2.5-0.5B's config.json
QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=True)  # fmt: skip
MODEL = ModelConfig(name="bench")  # the model keys of both arms: float32 weights, attention auto (sdpa here)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def model_and_tokenizer():
    """The benchmark's policy and tokenizer, and a description of them."""
    tokenizer = byte_tokenizer()
    if not CUDA:
        model = build_tiny(MODEL, tokenizer)
        return model, tokenizer, f"model=tiny ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)"
    # every id the model can sample decodes to a token of its own
    tokenizer.add_tokens([f"<|id{i}|>" for i in range(QWEN25_05B["vocab_size"] - len(tokenizer))])
    config = Qwen2Config(
        **QWEN25_05B, bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    return model, tokenizer, f"Qwen2 of Qwen2.5-0.5B's sizes ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters)"


def environment():
    # a GPU takes the paper's game (4 cards, target 24, its 550-character prompt); a CPU the demo's short one
    return envs.make("generalpoints") if CUDA else envs.make("generalpoints", num_cards=3, target=12, prompt_style="short")


def bare_reward(env):
    """The environment's reward as a TRL user writes a reward function."""

    def reward(prompts, completions, **columns):
        n = len(completions)
        rows = [{k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == n} for i in range(n)]
        return [env.score(c[-1]["content"], row).reward for c, row in zip(completions, rows)]

    reward.__name__ = "generalpoints_reward"
    return reward


class Timing(TrainerCallback):
    """Seconds of every optimizer step, with the generation inside it timed by wrapping `_generate_single_turn` (GRPO
    trainers; SDPO's generates its own way and gets step times only)."""

    def __init__(self, trainer):
        self.steps, self.generation, self.prompt_tokens, self.completion_tokens = [], [], [], []
        generate = getattr(trainer, "_generate_single_turn", None)
        if generate is None:
            return

        def timed(prompt_ids, *args, **kwargs):
            sync()
            started = time.perf_counter()
            completion_ids, logprobs = generate(prompt_ids, *args, **kwargs)
            sync()
            self.generation.append(time.perf_counter() - started)
            self.prompt_tokens.append(sum(map(len, prompt_ids)))
            self.completion_tokens.append(sum(map(len, completion_ids)))
            return completion_ids, logprobs

        trainer._generate_single_turn = timed

    def on_step_begin(self, args, state, control, **kwargs):
        sync()
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        sync()
        self.steps.append(time.perf_counter() - self._started)


def no_checkpoints(args):
    args.save_strategy = SaveStrategy.NO
    return args


def grpo_fields(settings) -> dict:
    """The hyperparameters both GRPO arms share (rlexp's defaults and the benchmark's batch)."""
    return dict(per_device_train_batch_size=settings.batch, num_generations=settings.generations,
                max_completion_length=settings.max_completion_length, max_steps=settings.steps)  # fmt: skip


def rlexp_trainer(model, tokenizer, env, settings, workdir, generation: str):
    """GRPO as rlexp's stage builds it (rlexp/modes/train.py): its config from the algorithm, the model keys and the
    generation group, the trainer built with vLLM's engine seeded by the run's seed."""
    algo = GRPO(name="grpo", logging_steps=1, **grpo_fields(settings))
    args = algo.training_args(f"{workdir}/rlexp", 0, PRECISION, generation=GenerationConfig(name=generation), model=MODEL)
    with seeded_engines(0):
        return algo.build_trainer(model, tokenizer, env, no_checkpoints(args))


def trl_trainer(model, tokenizer, env, settings, workdir, generation: str):
    """GRPO as a TRL user sets it up, with the same hyperparameters as rlexp's GRPO defaults."""
    defaults = GRPO()
    vllm = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": GenerationConfig().gpu_memory_utilization}
    args = GRPOConfig(
        output_dir=f"{workdir}/trl", seed=0, bf16=PRECISION == "bf16", use_cpu=not CUDA, report_to="none",
        save_strategy="no", logging_steps=1, learning_rate=defaults.learning_rate, lr_scheduler_type="constant",
        max_grad_norm=defaults.max_grad_norm, weight_decay=defaults.weight_decay, beta=defaults.beta,
        epsilon=defaults.epsilon, loss_type=defaults.loss_type, scale_rewards=defaults.scale_rewards,
        temperature=defaults.temperature, num_iterations=defaults.num_iterations, activation_checkpointing=False,
        **grpo_fields(settings), **(vllm if generation == "vllm_colocate" else {}),
    )  # fmt: skip
    return GRPOTrainer(model=model, reward_funcs=[bare_reward(env)], args=args, train_dataset=env.dataset("train"),
                       processing_class=tokenizer)  # fmt: skip


def config_differences(a, b) -> list[str]:
    ours, theirs = a.args.to_dict(), b.args.to_dict()
    skip = {"output_dir", "logging_dir"}
    return sorted(k for k in ours if k not in skip and ours[k] != theirs.get(k))


def quiet(trainer):
    """No progress bar and no printed logs: the table is the output."""
    for printer in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(printer)
    return trainer


def run_steps(trainer, model, initial: dict, seed: int):
    """`trainer.train()` from `initial` weights, on the device; then the model back in CPU memory and the optimizer
    dropped, so the other arm's call starts from the same memory. Returns its Timing and its peak memory."""
    model.load_state_dict(initial)
    model.to(DEVICE)
    gc.collect()
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timing = Timing(trainer)
    trainer.add_callback(timing)
    set_seed(seed)
    trainer.train()
    trainer.remove_callback(timing)
    vars(trainer).pop("_generate_single_turn", None)  # the class's own again
    peak = torch.cuda.max_memory_allocated() if CUDA else None
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.accelerator.free_memory()  # accelerate keeps every optimizer it prepared (their state on the GPU) till then
    model.to("cpu")
    return timing, peak


def gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def bench_grpo(settings, template, tokenizer, described: str, generation: str) -> None:
    """The GRPO table; `template` is the policy as built, which no trainer patches: each arm trains a copy."""
    env = environment()
    initial = template.state_dict()
    with tempfile.TemporaryDirectory() as workdir:
        if generation == "vllm_colocate":  # vLLM loads the model by its path: both arms name the one saved here
            template.save_pretrained(f"{workdir}/model")
            tokenizer.save_pretrained(f"{workdir}/model")
            template.name_or_path = template.config._name_or_path = f"{workdir}/model"
        models = {"trl": copy.deepcopy(template), "rlexp": copy.deepcopy(template)}
        arms = {"trl": quiet(trl_trainer(models["trl"], tokenizer, env, settings, workdir, generation)),
                "rlexp": quiet(rlexp_trainer(models["rlexp"], tokenizer, env, settings, workdir, generation))}  # fmt: skip
        for m in models.values():
            m.to("cpu")
        differences = config_differences(arms["rlexp"], arms["trl"])
        runs = {name: [] for name in arms}
        for repeat in range(settings.repeats + 1):  # repeat 0 warms up
            order = list(arms) if repeat % 2 == 0 else list(arms)[::-1]
            for name in order:
                timing, peak = run_steps(arms[name], models[name], initial, seed=repeat)
                if repeat:
                    runs[name].append((timing, peak))
    where = f"GPU {torch.cuda.get_device_name()}" if CUDA else f"CPU, {torch.get_num_threads()} threads"
    print(f"GRPO step, rlexp beside bare TRL: {described}, generation={generation}, {where}, precision {PRECISION}")
    print(f"  {settings.batch} completions a step ({settings.batch // settings.generations} prompts x {settings.generations}), "
          f"up to {settings.max_completion_length} tokens; {settings.steps} steps x {settings.repeats} repeats after a warm-up, medians")  # fmt: skip
    print(f"  TRL config fields that differ: {', '.join(differences) or 'none'}")
    print(f"  {'arm':<8}{'s/step':>9}{'gen tok/s':>11}{'train tok/s':>13}{'tokens/step':>13}{'peak GiB':>10}")
    step_medians = {}
    for name, results in runs.items():
        steps = [s for t, _ in results for s in t.steps]
        gen = [g for t, _ in results for g in t.generation]
        generated = [c for t, _ in results for c in t.completion_tokens]
        trained = [p + c for t, _ in results for p, c in zip(t.prompt_tokens, t.completion_tokens)]
        rest = [s - g for s, g in zip(steps, gen)]
        step_medians[name] = [statistics.median(t.steps) for t, _ in results]
        peaks = [p for _, p in results if p is not None]
        print(f"  {name:<8}{statistics.median(steps):>9.3f}{statistics.median(c / g for c, g in zip(generated, gen)):>11.0f}"
              f"{statistics.median(n / r for n, r in zip(trained, rest)):>13.0f}{statistics.median(generated):>13.0f}"
              f"{gib(max(peaks) if peaks else None):>10}")  # fmt: skip
    ratio = statistics.median(t / r for t, r in zip(step_medians["trl"], step_medians["rlexp"]))
    print(f"  rlexp / trl throughput: {ratio:.3f} (target >= 0.97)")


def bench_copies(settings, template, tokenizer, described: str) -> None:
    """One step of SDPO (EMA teacher) and of Jackpot (stale actor copy), the copy on the device and offloaded."""
    env = environment()
    initial = template.state_dict()
    copy_bytes = parameter_bytes(template)
    print(f"\nWhole model copies: {described}; each copy holds {copy_bytes / 2**30:.3f} GiB of parameters "
          f"({copy_bytes:,} bytes), as much as the policy; {settings.copy_steps} step(s) after a warm-up step")  # fmt: skip
    print(f"  {'algorithm':<34}{'s/step':>9}{'peak GiB':>10}")
    fields = dict(per_device_train_batch_size=settings.batch, num_generations=settings.generations,
                  max_completion_length=settings.max_completion_length, max_steps=1 + settings.copy_steps)  # fmt: skip
    algos = {
        "sdpo, teacher on the device": SDPO(name="sdpo", **fields),
        "sdpo, algo.teacher_offload=true": SDPO(name="sdpo", teacher_offload=True, **fields),
        "jackpot, actor copy on the device": Jackpot(name="jackpot", actor="self", actor_lag=1, **fields),
        "jackpot, algo.actor_offload=true": Jackpot(name="jackpot", actor="self", actor_lag=1, actor_offload=True, **fields),
    }
    with tempfile.TemporaryDirectory() as workdir:
        for label, algo in algos.items():
            algo.check(world_size=1)
            policy = copy.deepcopy(template).to(DEVICE)
            args = no_checkpoints(algo.training_args(workdir, 0, PRECISION, model=MODEL))
            trainer = quiet(algo.build_trainer(policy, tokenizer, env, args))
            timing, peak = run_steps(trainer, policy, initial, seed=0)
            del trainer, policy
            print(f"  {label:<34}{statistics.median(timing.steps[1:]):>9.3f}{gib(peak):>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per arm and repeat")
    parser.add_argument("--repeats", type=int, default=2 if CUDA else 8,
                        help="repeats after the warm-up one; even, so that each arm goes first as often")  # fmt: skip
    parser.add_argument("--copy-steps", type=int, default=1, help="measured steps of each model-copy arm")
    parser.add_argument("--max-completion-length", type=int, default=128 if CUDA else 64)
    parser.add_argument("--generations", type=int, default=8, help="completions per prompt")
    parser.add_argument("--batch", type=int, default=32 if CUDA else 16, help="completions per step")
    settings = parser.parse_args()
    if not CUDA:  # one thread: a thread per core slows down many times over on a shared machine (bench_threads.py)
        torch.set_num_threads(1)
    model = model_and_tokenizer()
    bench_grpo(settings, *model, "hf")
    if CUDA and importlib.util.find_spec("vllm") is not None:
        # TRL's colocated engine joins a torch.distributed group of this one process
        for name, value in (
            ("RANK", "0"),
            ("LOCAL_RANK", "0"),
            ("WORLD_SIZE", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29531"),
        ):
            os.environ.setdefault(name, value)
        bench_grpo(settings, *model, "vllm_colocate")
    else:
        print("  (vLLM arm: not run, vLLM is not installed" + ("" if CUDA else " and there is no GPU") + ")")
    bench_copies(settings, *model)


if __name__ == "__main__":
    main()
