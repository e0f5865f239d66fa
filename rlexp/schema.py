"""The config schemas, a leaf module: it imports nothing of rlexp but the one-line rlexp.errors, so any module
may import it without a cycle.

Each dataclass is the one place where its keys' defaults and meanings are written (docs/config.md is
generated from them). Algorithms and environments keep their own dataclasses in their modules; their
registries store them in Hydra's ConfigStore as `schema/algo/<name>` and `schema/env/<name>`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from rlexp.errors import ConfigError

# the config tree: rlexp runs from its clone (an editable install), where conf/ sits beside the package
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@dataclass
class ModelConfig:
    """Schema shared by every `conf/model/*.yaml`."""

    name: str = "tiny"
    # hub id or local directory; null builds the tiny model from the sizes below
    pretrained: Optional[str] = None
    # the model reads images too (a vision-language model): a hub one loads with AutoModelForImageTextToText and
    # AutoProcessor; with `pretrained` null, the tiny model is a Qwen2-VL one, its vision tower as wide and as deep
    # as its language model (conf/model/tiny_vl.yaml)
    vision: bool = False
    # > Sizes of the model built from a config (used only when `pretrained` is null)
    # width of the residual stream
    hidden_size: int = 128
    # transformer blocks
    num_layers: int = 4
    # attention heads (as many key-value heads)
    num_heads: int = 4
    # width of each block's MLP
    intermediate_size: int = 512
    # longest sequence, prompt and completion together, in tokens
    max_position_embeddings: int = 2048
    # seed of the random initial weights, so every run of `tiny` starts from the same model
    init_seed: int = 0
    # tiny vision model: its processor scales each image down to at most this many pixels, in multiples of 28: the
    # 1200x1200 GeneralPoints table becomes 196x196, 14x14 patches of 14 px, 49 image tokens (fast on a CPU)
    max_image_pixels: int = 224 * 224
    # > How the model runs on a GPU (conf/model/ presets for the hub models set these)
    # dtype of the weights as loaded: float32 | bfloat16 | float16. float32 keeps fp32 weights and optimizer state, and
    # the run's `precision` (bf16 on a GPU that has it) computes under autocast: mixed precision. bfloat16 (float16)
    # loads and holds half the bytes; a stage trains on such weights only under launcher=zero2|zero3 with precision=bf16
    # (fp16), where DeepSpeed keeps fp32 master weights: a plain optimizer step on bf16 weights loses every update under
    # 1/256 of a weight, which at a learning rate of 1e-6 is nearly all of them
    dtype: str = "float32"
    # attention kernel: auto (flash_attention_2 on a GPU where the flash_attn package is installed, else sdpa) | sdpa
    # (torch's scaled_dot_product_attention) | flash_attention_2 (needs `pip install flash-attn` and a GPU) | eager
    attn_implementation: str = "auto"
    # recompute activations in the backward pass of every training stage: less memory, about 20-30% more time per step
    # (transformers' activation_checkpointing, formerly gradient_checkpointing)
    activation_checkpointing: bool = False
    # Liger's Triton kernels (RMSNorm, SwiGLU, RoPE) in training: less memory on a GPU (transformers' and TRL's
    # use_liger_kernel; needs `pip install liger-kernel` and a GPU)
    use_liger_kernel: bool = False
    # defaults for the chat template's variables, wherever a prompt is rendered (training, evaluation, PEAR's
    # behaviour sampling, mode=discover), e.g. {enable_thinking: false} for Qwen3; true, false, numbers or text
    chat_template_kwargs: Dict[str, Any] = field(default_factory=dict)


def check_available(cfg: ModelConfig) -> None:
    """Fail early, naming `model=tiny`, when a hub model cannot be had (offline and not cached)."""
    if cfg.pretrained is None or Path(cfg.pretrained).is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(cfg.pretrained, "config.json"), str):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
            return
        except OSError:
            pass
    raise ConfigError(
        f"model={cfg.name} needs {cfg.pretrained} from the Hugging Face hub, which is not reachable "
        f"{'(HF_HUB_OFFLINE is set) ' if offline else ''}and not in the local cache; "
        f"use model={'tiny_vl' if cfg.vision else 'tiny'} to run offline, or download the model first"
    )


@dataclass
class DiscoverConfig:
    # the split questions come from; empty: the environment's first evaluation split
    split: str = ""
    # hard questions to run (the first ones of the split that the starting model rarely solves)
    num_questions: int = 4
    # questions looked at to find them
    max_candidates: int = 32
    # attempts per candidate to measure its pass rate; 0 takes the first questions as they are
    probe_samples: int = 16
    # a question is hard when its pass rate is below this
    max_pass_rate: float = 0.5
    # attempts per question, method and run
    budget: int = 64
    # attempts per SDPO step and per round of the other two methods
    attempts_per_step: int = 16
    # independent runs (seeds) per question
    runs: int = 3
    # the k of each discovery@k reported
    k: List[int] = field(default_factory=lambda: [1, 4, 16, 64])
    # null: algo.learning_rate
    learning_rate: Optional[float] = None
    # SDPO's bound on the per-token advantage |log q - log pi|
    advantage_clip: float = 5.0
    # EMA rate of SDPO's teacher
    teacher_update_rate: float = 0.01
    # multi-turn: feedback history kept in the prompt, in tokens
    max_history_tokens: int = 32000
    # multi-turn: feedback_only (one user turn: the question and every earlier feedback; the authors' default, and
    # better in their runs) | attempt_and_feedback (each earlier attempt as an assistant turn, its feedback after it)
    multi_turn_template: str = "feedback_only"
    # bootstrap resamples of the confidence interval
    bootstrap: int = 2000
    # level of the confidence interval
    confidence: float = 0.9

    def check(self, algo: str, launcher: str) -> None:
        """The checks of mode=discover for algo=`algo` and launcher=`launcher`. Raises ConfigError."""
        if algo != "sdpo":
            raise ConfigError(f"mode=discover runs test-time SDPO: use algo=sdpo (got algo={algo})")
        if launcher != "local":
            raise ConfigError("mode=discover runs in one process: use launcher=local")
        for knob in ("num_questions", "budget", "attempts_per_step", "runs", "max_candidates"):
            if getattr(self, knob) < 1:
                raise ConfigError(f"discover.{knob}={getattr(self, knob)} must be at least 1")
        if self.budget % self.attempts_per_step:
            raise ConfigError(
                f"discover.budget={self.budget} must be a multiple of discover.attempts_per_step={self.attempts_per_step}"
            )
        bad = [k for k in self.k if not 1 <= k <= self.budget]
        if bad:
            raise ConfigError(f"discover.k={list(self.k)} has k outside 1..discover.budget={self.budget}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"discover.confidence={self.confidence} must be between 0 and 1")
        if self.multi_turn_template not in ("feedback_only", "attempt_and_feedback"):
            raise ConfigError(
                f"discover.multi_turn_template={self.multi_turn_template} is not one of feedback_only, attempt_and_feedback"
            )


@dataclass
class EvalConfig:
    # splits to report; empty: the environment's own (GeneralPoints: id, ood)
    splits: List[str] = field(default_factory=list)
    # prompts per split (the first N rows of the split)
    num_prompts: int = 64
    # samples per prompt; pass@k needs k <= num_samples
    num_samples: int = 4
    # the k of each pass@k reported
    k: List[int] = field(default_factory=lambda: [1, 4])
    # 0 decodes greedily (then use num_samples=1)
    temperature: float = 1.0
    # tokens a sampled completion may have
    max_new_tokens: int = 256
    # sequences generated at once
    batch_size: int = 64
    # evaluate the starting model too, for the before/after table
    before: bool = True
    # what generates the samples: hf | vllm (one engine call per split) | continuous_batching; null: the engine of
    # the run's `generation` group (vllm for both of its vLLM modes)
    generation: Optional[str] = None

    def engine(self, generation: str) -> str:
        """What generates the samples, given the run's `generation` group (its name)."""
        if self.generation is not None:
            return self.generation
        return "vllm" if generation.startswith("vllm") else generation

    def check(self, generation: str, vision: bool) -> None:
        """The checks of eval.generation, with the run's `generation` group and whether the model reads images.
        Raises ConfigError; imports neither torch nor vLLM."""
        import importlib.util

        engine = self.engine(generation)
        said = f"eval.generation={engine}" if self.generation is not None else f"generation={generation} (for evaluation)"
        if engine not in EVAL_ENGINES:
            raise ConfigError(f"eval.generation={engine} is not one of {', '.join(EVAL_ENGINES)} (or null)")
        if engine == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"{said} needs vLLM, which is not installed here: {VLLM_INSTALL} (or eval.generation=hf)")
        if engine == "continuous_batching" and vision:
            raise ConfigError(f"{said}: transformers' continuous batching takes text only; use eval.generation=hf or vllm")


# what can generate evaluation samples (EvalConfig.generation)
# what a user without vLLM installs to use it (training's generation modes and evaluation alike)
VLLM_INSTALL = 'pip install "trl[vllm]"'
EVAL_ENGINES = ("hf", "vllm", "continuous_batching")


@dataclass
class LauncherConfig:
    name: str = "local"
    # processes to start; null: every visible GPU, or 2 on a machine without one
    num_processes: Optional[int] = None
    # written to the accelerate config file of the run (distributed_type, deepspeed_config ...)
    accelerate: Dict[str, Any] = field(default_factory=dict)
    # GPUs each run gets to itself (a slot), e.g. each cell of a sweep whose hydra/launcher=joblib runs several at
    # once: a run waits for a free slot and runs with its CUDA_VISIBLE_DEVICES; 0 leaves CUDA_VISIBLE_DEVICES alone
    gpus_per_job: int = 0
    # the GPUs slots are made from (indices or UUIDs); empty: those in CUDA_VISIBLE_DEVICES, else every GPU here
    gpus: List[str] = field(default_factory=list)


# the generation modes that sample with vLLM (in the training processes, or in a server of its own)
VLLM_MODES = ("vllm_colocate", "vllm_server")


@dataclass
class GenerationConfig:
    """Schema shared by every `conf/generation/*.yaml`: how the RL algorithms (grpo, luffy, sdpo, jackpot) sample
    their rollouts, and evaluation its samples unless `eval.generation` says otherwise. Stages that do not generate
    (sft, iwsft, pear) train as they always do; in a pipeline (sft -> grpo) the RL stage generates this way."""

    # hf: transformers' `generate` in each training process | vllm_colocate: a vLLM engine inside each training
    # process, on its GPU | vllm_server: a `trl vllm-serve` process on `server_gpus`, training on the other GPUs |
    # continuous_batching: transformers' continuous batching (TRL's use_transformers_continuous_batching)
    name: str = "hf"
    # > vLLM (vllm_colocate, vllm_server)
    # share of each vLLM GPU's memory vLLM takes for weights and KV cache: colocated, what training leaves over
    gpu_memory_utilization: float = 0.3
    # GPUs one engine is split over: colocated, consecutive ranks form a group sharing one engine (the world size
    # must divide by it); a server, the GPUs it runs on
    tensor_parallel_size: int = 1
    # longest prompt plus completion vLLM makes room for, in tokens; null: the model's context length
    max_model_length: Optional[int] = None
    # colocated: vLLM frees its weights and KV cache while training steps run (less memory, a reload per generation)
    enable_sleep_mode: bool = False
    # correct the loss for the mismatch between vLLM's sampling probabilities and the trainer's: each token's (or
    # completion's) loss times w = pi_trainer / pi_vllm, bounded (TRL's vllm_importance_sampling_correction for grpo
    # and luffy; sdpo multiplies its loss by the same w, as its authors' runs do; jackpot uses algo.correction)
    importance_sampling_correction: bool = True
    # token_truncate, token_mask, sequence_truncate or sequence_mask (TRL's modes: w per token or per completion,
    # truncated at the bound or zero above it); null: the algorithm's own (grpo, luffy: TRL's sequence_mask;
    # sdpo: token_truncate, as its authors' runs)
    importance_sampling_mode: Optional[str] = None
    # the bound on w; null: the algorithm's own (grpo, luffy: TRL's 3; sdpo: 2, as its authors' runs)
    importance_sampling_clip_max: Optional[float] = None
    # > vllm_server: the server rlexp starts for each stage that generates, and stops when the stage ends
    # GPUs the server runs on (indices or UUIDs); empty: the last tensor_parallel_size GPUs of those the run sees
    server_gpus: List[str] = field(default_factory=list)
    # address the server listens on and the trainer reaches it at
    server_host: str = "127.0.0.1"
    # the server's HTTP port; 0: a free port, picked when it starts
    server_port: int = 0
    # port of the NCCL group that carries the trained weights to the server; 0: a free port
    group_port: int = 0
    # seconds to wait for the server to answer /health after it starts (loading a large model takes minutes)
    server_timeout: float = 900.0

    def check(self) -> None:
        """The checks of the group's own keys. Raises ConfigError."""
        names = ("hf", *VLLM_MODES, "continuous_batching")
        if self.name not in names:
            raise ConfigError(f"generation.name={self.name} is not one of {', '.join(names)}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ConfigError(f"generation.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]")
        if self.tensor_parallel_size < 1:
            raise ConfigError(f"generation.tensor_parallel_size={self.tensor_parallel_size} must be at least 1")
        if self.max_model_length is not None and self.max_model_length < 1:
            raise ConfigError(f"generation.max_model_length={self.max_model_length} must be at least 1 (or null)")
        modes = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
        if self.importance_sampling_mode not in (None, *modes):
            raise ConfigError(
                f"generation.importance_sampling_mode={self.importance_sampling_mode} is not one of {', '.join(modes)}"
            )
        if self.importance_sampling_clip_max is not None and not self.importance_sampling_clip_max > 0:
            raise ConfigError(f"generation.importance_sampling_clip_max={self.importance_sampling_clip_max} must be positive")
        for key in ("server_port", "group_port"):
            if not 0 <= getattr(self, key) < 65536:
                raise ConfigError(f"generation.{key}={getattr(self, key)} is not a port (0: a free one)")
        if self.server_timeout <= 0:
            raise ConfigError(f"generation.server_timeout={self.server_timeout} must be positive (seconds)")
        if self.server_gpus and len(self.server_gpus) != self.tensor_parallel_size:
            raise ConfigError(
                f"generation.server_gpus has {len(self.server_gpus)} GPUs and the server splits its engine over "
                f"generation.tensor_parallel_size={self.tensor_parallel_size}; make them agree"
            )
        if self.enable_sleep_mode and self.name != "vllm_colocate":
            raise ConfigError("generation.enable_sleep_mode frees a colocated engine's memory: it needs generation=vllm_colocate")


@dataclass
class LoggerConfig:
    # wandb | none
    name: str = "none"
    # W&B project
    project: str = "rlexp"
    # W&B entity (user or team); null: your default
    entity: Optional[str] = None
    # W&B group; null: the experiment's name, or the sweep's directory for -m
    group: Optional[str] = None
    # W&B run name; null: built from the command-line overrides
    run_name: Optional[str] = None
    # online | offline | disabled; the WANDB_MODE variable wins over it
    mode: str = "online"
    # W&B tags besides the algorithm, environment and model
    tags: List[str] = field(default_factory=list)
    # every this many steps of an RL stage, a table of the step's rollouts (prompt, completion, reward, success,
    # feedback and the algorithm's own columns) to W&B, under a key of its own per step, and to completions.jsonl;
    # 0: none. Written with logger=none too
    log_completions_steps: int = 10
    # rows of each such table: the step's first rollouts (the main process's first, then the next process's ...),
    # and each split's first samples in the table of an evaluation
    completions_rows: int = 64
    # completions.jsonl stops growing at this size: later rows are not written to it (one line says so), W&B still
    # gets every table
    completions_max_mb: float = 100.0


@dataclass
class RunConfig:
    # the last stage's algorithm (a conf/algo/ option and its keys)
    algo: Any = MISSING
    # the environment (a conf/env/ option and its knobs)
    env: Any = MISSING
    # the policy (a conf/model/ option)
    model: Any = MISSING
    # how the run starts (a conf/launcher/ option)
    launcher: LauncherConfig = MISSING
    # where metrics go besides metrics.jsonl (a conf/logger/ option)
    logger: LoggerConfig = MISSING
    # how rollouts and evaluation samples are generated (a conf/generation/ option)
    generation: GenerationConfig = MISSING
    # stages that run before `algo`, in order, each starting from the previous one's checkpoint
    prepare: Dict[str, Any] = field(default_factory=dict)
    # evaluation after each stage and in mode=eval
    eval: EvalConfig = field(default_factory=EvalConfig)
    # test-time self-distillation against best-of-k and multi-turn retry (mode=discover)
    discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    # train: run the stages, then evaluate; eval: evaluate `checkpoint` only; discover: discovery@k (algo=sdpo)
    mode: str = "train"
    # a checkpoint directory to start from (train), to evaluate (eval) or to discover with (discover)
    checkpoint: Optional[str] = None
    # seed of the run: initialisation order, sampling, data shuffling, evaluation
    seed: int = 0
    # auto: bf16 on a GPU that supports it, else fp32
    precision: str = "auto"
    # the experiment's name, used as the W&B group
    name: str = "default"
    # torch threads per process; null: this machine's cores divided among the processes the run starts
    threads: Optional[int] = None
    # mode=train in a run directory that holds a run: auto continues it from its latest complete checkpoint (the same
    # command, the same hydra.run.dir); never refuses it unless overwrite=true; or a stage's checkpoint-<step>
    # directory, from which that stage and the ones after it run, in this run directory
    resume: str = "auto"
    # with resume=never: delete the run in the run directory (its stages, metrics, summary) and start afresh
    overwrite: bool = False
    # every stage runs at most this many steps (null: each its algo.max_steps): a quick check that an experiment or
    # a sweep of them runs end to end, e.g. python -m rlexp -m 'experiment=glob(*)' max_steps_per_stage=1
    max_steps_per_stage: Optional[int] = None
    # your own packages of algorithms and environments, imported before anything composes (README: plugins)
    plugins: List[str] = field(default_factory=list)
    # where the run writes; set by Hydra (hydra.run.dir=...)
    run_dir: str = "${hydra:runtime.output_dir}"


def register_schemas() -> None:
    """Store the run's schema and the groups' shared ones; algorithms and environments store their own when they register."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="rlexp_schema", node=RunConfig)
    cs.store(group="schema/launcher", name="base", node=LauncherConfig)
    cs.store(group="schema/logger", name="base", node=LoggerConfig)
    cs.store(group="schema/generation", name="base", node=GenerationConfig)
    cs.store(group="schema/model", name="base", node=ModelConfig)


def structured(cls: type, node: DictConfig | dict):
    """`node` as an instance of dataclass `cls`; unknown keys and bad types raise ConfigError."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node))
    except Exception as exc:  # OmegaConf's errors name the key; keep their first line
        raise ConfigError(str(exc).splitlines()[0]) from exc
