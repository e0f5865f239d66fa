"""The checks that run before anything loads, and what the command line needs around them.

Every group's YAML names its schema in its defaults list (`/schema/<group>/<name>@_here_`), so an
unknown key or a wrongly typed value fails while Hydra composes; the schemas are rlexp/schema.py's
dataclasses and the algorithms' and environments' own, which their registries store. Here:
`validate` (what composing cannot see), the stages, mode=eval's start from its training run, the
"did you mean" for a misspelt key, the thread count, and the import of plugins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.util
import os
import re
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from rlexp import algos, envs, modes, schema
from rlexp import generation as rlexp_generation
from rlexp.errors import ConfigError
from rlexp.schema import (
    DiscoverConfig,
    EvalConfig,
    GenerationConfig,
    LauncherConfig,
    LoggerConfig,
    ModelConfig,
    RunConfig,
    check_available,
    structured,
)

LAUNCHERS = ("local", "ddp", "zero2", "zero3")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # model.dtype: the precision its weights train under
ATTENTION = ("auto", "sdpa", "flash_attention_2", "eager")


def register_schemas() -> None:
    """The run's schemas, and every algorithm's and environment's (importing them registers them)."""
    schema.register_schemas()
    algos.names()
    envs.names()


def algo_from(node) -> algos.Algo:
    name = node.get("name")
    try:
        return structured(algos.algo_class(name), node)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


def env_from(node) -> envs.Env:
    knobs = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    name = knobs.pop("name")
    try:
        return envs.make(name, **knobs)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"env={name}: {exc.args[0]}") from None


def stages(cfg: DictConfig) -> list[tuple[str, algos.Algo]]:
    """(stage name, algorithm) in the order they run: `prepare` first, `algo` last."""
    plan = [(name, algo_from(node)) for name, node in cfg.prepare.items()]
    final = algo_from(cfg.algo)
    if final.name in cfg.prepare:
        raise ConfigError(f"prepare.{final.name} has the name of the final stage algo={final.name}; rename the stage")
    plan.append((final.name, final))
    cap = cfg.get("max_steps_per_stage")
    if cap is not None:
        if cap < 1:
            raise ConfigError(f"max_steps_per_stage={cap} must be at least 1 (or null: each stage's algo.max_steps)")
        for _, algo in plan:
            algo.max_steps = min(algo.max_steps, cap)
    return plan


def resolve_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision} is not one of {', '.join(PRECISIONS)}")
    import torch

    has_cuda = torch.cuda.is_available()
    bf16_ok = has_cuda and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return "bf16" if bf16_ok else "fp32"
    if precision == "bf16" and not bf16_ok:
        raise ConfigError(
            "precision=bf16 needs a GPU with bf16 support and this machine has none; use precision=fp32 or precision=auto"
        )
    if precision == "fp16" and not has_cuda:
        raise ConfigError("precision=fp16 needs a GPU and this machine has none; use precision=fp32 or precision=auto")
    return precision


def world_size(launcher: LauncherConfig) -> int:
    if launcher.name == "local":
        return 1
    if launcher.num_processes is not None:
        return launcher.num_processes
    if launcher.gpus_per_job:
        return launcher.gpus_per_job
    import torch

    return torch.cuda.device_count() or 2


def validate(cfg: DictConfig, machine: bool = True) -> None:
    """Every check that can fail before a model loads. Raises ConfigError with what to change.

    machine=False leaves out the checks that ask torch about the GPUs (precision, launcher=local on several GPUs, a
    world size of every visible GPU), so the command line answers without loading torch; each run checks them again
    with machine=True when it starts."""
    known_modes = modes.names()
    if cfg.mode not in known_modes:
        raise ConfigError(f"mode={cfg.mode} is not one of {', '.join(known_modes)}")
    if cfg.mode == "eval" and not cfg.checkpoint:
        raise ConfigError("mode=eval needs checkpoint=<a run's checkpoint directory>")
    if cfg.checkpoint and not Path(cfg.checkpoint, "config.json").is_file():
        raise ConfigError(f"checkpoint={cfg.checkpoint} is not a model directory (it has no config.json)")
    launcher = structured(LauncherConfig, cfg.launcher)
    if launcher.name not in LAUNCHERS:
        raise ConfigError(f"launcher.name={launcher.name} is not one of {', '.join(LAUNCHERS)}")
    if launcher.gpus_per_job < 0:
        raise ConfigError(f"launcher.gpus_per_job={launcher.gpus_per_job} must be 0 (no slots) or more")
    if launcher.gpus_per_job > 1 and launcher.name == "local":
        raise ConfigError("launcher=local runs one process on one GPU: use launcher.gpus_per_job=1, or launcher=ddp")
    if launcher.gpus and launcher.gpus_per_job > len(launcher.gpus):
        raise ConfigError(f"launcher.gpus_per_job={launcher.gpus_per_job} is more than launcher.gpus has ({len(launcher.gpus)})")
    if launcher.num_processes is not None and launcher.num_processes < 1:
        raise ConfigError(f"launcher.num_processes={launcher.num_processes} must be at least 1")
    if machine:
        check_machine(launcher, cfg.precision)
    elif cfg.precision not in PRECISIONS:
        raise ConfigError(f"precision={cfg.precision} is not one of {', '.join(PRECISIONS)}")
    if cfg.logger.name not in ("wandb", "none"):
        raise ConfigError(f"logger.name={cfg.logger.name} is not one of wandb, none")
    generation = structured(GenerationConfig, cfg.generation)
    generation.check()
    for knob in ("log_completions_steps", "completions_rows", "completions_max_mb"):
        if cfg.logger[knob] < 0:
            raise ConfigError(f"logger.{knob}={cfg.logger[knob]} must be 0 or more")
    for name, algo in stages(cfg):
        with stage_keys(cfg, name):
            algo.check(world_size(launcher) if machine else launcher.num_processes or 1)
            algo.check_generation(generation)
            algo.check_launcher(launcher.name)
    if cfg.mode == "discover":
        structured(DiscoverConfig, cfg.discover).check(algo_from(cfg.algo).name, launcher.name)
    env = env_from(cfg.env)
    for name, algo in stages(cfg):
        with stage_keys(cfg, name):
            algo.check_env(env)
    check_resume(cfg.resume, [name for name, _ in stages(cfg)])
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads={cfg.threads} must be at least 1 (or null: the cores divided among the run's processes)")
    bad_k = [k for k in cfg.eval.k if not 1 <= k <= cfg.eval.num_samples]
    if bad_k:
        raise ConfigError(
            f"eval.k={list(cfg.eval.k)} has k outside 1..eval.num_samples={cfg.eval.num_samples}; pass@k needs k <= samples"
        )
    model = structured(ModelConfig, cfg.model)
    structured(EvalConfig, cfg.eval).check(cfg.generation.name, model.vision)
    for key, value in model.chat_template_kwargs.items():
        if not key.isidentifier() or not isinstance(value, (bool, int, float, str)):
            raise ConfigError(
                f"model.chat_template_kwargs.{key}={value!r}: a template variable's default is true, false, a number or text"
            )
    if env.has_images():
        check_images(cfg, model)
    check_available(model)
    if cfg.mode == "train" and any(algo.generates for _, algo in stages(cfg)):
        check_generation(generation, model.vision, launcher, machine)
    check_gpu_settings(model, launcher, cfg.precision, training=cfg.mode != "eval", machine=machine)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_gpu_settings(model: ModelConfig, launcher: LauncherConfig, precision: str, training: bool, machine: bool) -> None:
    """model.dtype, model.attn_implementation and model.use_liger_kernel against what is installed and, with
    `machine`, against this machine's GPU and the precision `precision` resolves to."""
    if model.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={model.dtype} is not one of {', '.join(DTYPES)}")
    if model.attn_implementation not in ATTENTION:
        raise ConfigError(f"model.attn_implementation={model.attn_implementation} is not one of {', '.join(ATTENTION)}")
    if model.attn_implementation == "flash_attention_2" and not installed("flash_attn"):
        raise ConfigError(
            "model.attn_implementation=flash_attention_2 needs the flash_attn package, which is not installed "
            "(pip install flash-attn); use model.attn_implementation=auto, which takes it where it is installed, or sdpa"
        )
    if model.use_liger_kernel and not installed("liger_kernel"):
        raise ConfigError(
            "model.use_liger_kernel=true needs the liger_kernel package, which is not installed (pip install "
            "liger-kernel); set model.use_liger_kernel=false"
        )
    weights = DTYPES[model.dtype]
    if training and weights != "fp32":
        deepspeed = launcher.name in ("zero2", "zero3")
        resolved = resolve_precision(precision) if machine else precision
        if not deepspeed or resolved not in (weights, "auto"):
            raise ConfigError(
                f"model.dtype={model.dtype} trains only under launcher=zero2|zero3 with precision={weights}, where "
                f"DeepSpeed keeps fp32 master weights (a plain optimizer step on {model.dtype} weights loses every update "
                f"under 1/256 of a weight); use model.dtype=float32, which precision={weights} still computes in {weights}"
            )
    if machine:
        import torch

        if not torch.cuda.is_available():
            for wanted, knob in ((model.attn_implementation == "flash_attention_2", "model.attn_implementation=flash_attention_2"),
                                 (model.use_liger_kernel, "model.use_liger_kernel=true")):  # fmt: skip
                if wanted:
                    raise ConfigError(f"{knob} needs a CUDA GPU and this machine has none")


def check_images(cfg: DictConfig, model: ModelConfig) -> None:
    """An environment whose rows carry images needs a model, stages and a mode that take them."""
    if not model.vision:
        raise ConfigError(
            f"env={cfg.env.name} shows its prompts as images and model={model.name} reads text only; "
            "use a vision-language model: model=tiny_vl (offline), qwen2.5-vl-3b-instruct or llama-3.2-11b-vision-instruct"
        )
    if cfg.mode == "discover":
        raise ConfigError(f"mode=discover does not show images yet; env={cfg.env.name}'s rows carry them")
    for name, algo in stages(cfg):
        if not algo.reads_images():
            taking = ", ".join(n for n in algos.names() if algos.algo_class(n).reads_images())
            raise ConfigError(
                f"algo={algo.name} (stage {name}) does not train on images yet; with env={cfg.env.name}'s images use {taking}"
            )


def check_generation(generation: GenerationConfig, vision: bool, launcher: LauncherConfig, machine: bool) -> None:
    """The `generation` group of a run with a stage that generates (the RL algorithms). The split of the GPUs between
    a vLLM server and training is checked where it is made (rlexp/launch.py `server_gpus_apart`)."""
    rlexp_generation.check(generation, vision, world_size(launcher) if machine else launcher.num_processes or 1)
    if generation.name == "vllm_server" and machine:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "generation=vllm_server runs the server on GPUs of its own and sends it the weights over NCCL, and this "
                "machine has no GPU; use generation=hf or continuous_batching"
            )


def starts_server(cfg: DictConfig) -> bool:
    """The run starts a vLLM server: generation=vllm_server and a stage that generates."""
    return cfg.mode == "train" and cfg.generation.name == "vllm_server" and any(a.generates for _, a in stages(cfg))


def check_resume(resume: str, stage_names: list[str]) -> None:
    if resume in ("auto", "never"):
        return
    from rlexp.checkpoints import COMPLETE

    path = Path(resume)
    if not (path / COMPLETE).is_file():
        raise ConfigError(
            f"resume={resume} is not a complete checkpoint (a <run_dir>/<stage>/checkpoint-<step> directory with "
            f"{COMPLETE}); use resume=auto, resume=never, or such a directory"
        )
    if path.parent.name not in stage_names:
        raise ConfigError(f"resume={resume} is a checkpoint of stage {path.parent.name}, which this run does not have "
                          f"(its stages: {', '.join(stage_names)})")  # fmt: skip


def check_machine(launcher: LauncherConfig, precision: str) -> None:
    """The checks that ask torch about this machine's GPUs."""
    import torch

    if launcher.name == "local" and torch.cuda.device_count() > 1:
        # one process sees every GPU and the Trainer would fall back to torch DataParallel
        raise ConfigError(
            f"launcher=local runs one process and this machine shows {torch.cuda.device_count()} GPUs; "
            "use launcher=ddp (or zero2, zero3), or choose one GPU with CUDA_VISIBLE_DEVICES=0"
        )
    resolve_precision(precision)


@contextlib.contextmanager
def stage_keys(cfg: DictConfig, stage: str):
    """An algorithm's messages say `algo.<key>`; for a `prepare` stage the user types
    `prepare.<stage>.<key>`, so its ConfigErrors are reworded to name that."""
    try:
        yield
    except ConfigError as exc:
        if stage not in cfg.prepare:
            raise
        message = re.sub(r"\balgo=\w+", f"prepare.{stage}", str(exc))
        raise ConfigError(re.sub(r"\balgo\.", f"prepare.{stage}.", message)) from None


def threads_per_process(threads: Optional[int], processes: int) -> int:
    """torch intra-op threads for each of `processes` processes: `threads`, or the cores shared out."""
    if threads is not None:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // processes)


def known_keys() -> dict[str, list[str]]:
    """Every key a user can type, by its last part: {"learning_rate": ["algo.learning_rate", ...]}."""
    sections: list[tuple[str, type]] = [("", RunConfig)]
    sections += [("algo", algos.algo_class(n)) for n in algos.names()] + [("env", envs.env_class(n)) for n in envs.names()]
    sections += [
        ("eval", EvalConfig),
        ("model", ModelConfig),
        ("discover", DiscoverConfig),
        ("launcher", LauncherConfig),
        ("logger", LoggerConfig),
        ("generation", GenerationConfig),
    ]
    keys: dict[str, list[str]] = {}
    for prefix, cls in sections:
        for f in dataclasses.fields(cls):
            dotted = f"{prefix}.{f.name}" if prefix else f.name
            if dotted not in keys.setdefault(f.name, []):
                keys[f.name].append(dotted)
    return keys


def suggest(key: str, where: str = "", fields: Optional[list[str]] = None) -> Optional[str]:
    """The key the user probably meant: a close field of `where`, else the same key in another group (one that moved,
    such as model.activation_checkpointing), else a close key anywhere."""
    if fields:
        close = difflib.get_close_matches(key, fields, n=1)
        if close:
            return f"{where}.{close[0]}" if where else close[0]
    if where:
        moved = [dotted for dotted in known_keys().get(key, []) if dotted.rpartition(".")[0] != where]
        return moved[0] if moved else None
    everywhere = known_keys()
    close = difflib.get_close_matches(key, list(everywhere), n=1)
    return everywhere[close[0]][0] if close else None


# what mode=eval takes from the run that saved the checkpoint, unless the command line picks it anew
TRAINING_RUN_KEYS = ("env", "model", "eval", "seed")


def training_run(checkpoint: Optional[str]) -> Optional[DictConfig]:
    """The resolved config of the rlexp run that saved `checkpoint` (`<run_dir>/<stage>/checkpoint`), if it is one."""
    if not checkpoint:
        return None
    path = Path(checkpoint).parent.parent / "config.yaml"
    if not path.is_file():
        return None
    saved = OmegaConf.load(path)
    return saved if all(key in saved for key in TRAINING_RUN_KEYS) else None


def _picked(overrides: list[str], key: str) -> bool:
    """Whether the command line chooses `key` as a whole: `env=...`, `seed=...`, or an experiment that sets it."""
    for override in overrides:
        name, _, value = override.lstrip("+~").partition("=")
        if name == key or (name == "experiment" and key in _experiment_sets(value)):
            return True
    return False


def _experiment_sets(experiment: str) -> set[str]:
    """The top-level keys and groups conf/experiment/<experiment>.yaml sets (`env: {...}`, `override /model: ...`),
    itself or through the experiments its defaults list includes (`- /experiment/paper/sdpo_livecode_qwen3_8b`)."""
    path = Path(schema.CONF_DIR, "experiment", f"{experiment}.yaml")
    if not path.is_file():
        return set()
    node = OmegaConf.to_container(OmegaConf.load(path))
    defaults = node.pop("defaults", [])
    entries = [e for e in defaults if isinstance(e, dict)]
    groups = {k.split("/")[-1].split("@")[0] for entry in entries for k in entry}
    included = [e.removeprefix("/experiment/") for e in defaults if isinstance(e, str) and e.startswith("/experiment/")]
    return set(node) | groups | {key for other in included for key in _experiment_sets(other)}


def eval_env_name(cfg: DictConfig, overrides: list[str]) -> str:
    """The environment mode=eval will use (for naming its run directory before the config is merged)."""
    saved = training_run(cfg.checkpoint) if cfg.mode == "eval" else None
    return cfg.env.name if saved is None or _picked(overrides, "env") else saved.env.name


def from_training_run(cfg: DictConfig, overrides: list[str]) -> Optional[str]:
    """mode=eval: take TRAINING_RUN_KEYS from the checkpoint's run, then the command line's own
    `env.x=...` on top. Returns a line saying how the environment differs from training, if it does."""
    saved = training_run(cfg.checkpoint) if cfg.mode == "eval" else None
    if saved is None:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    for key in TRAINING_RUN_KEYS:
        if _picked(overrides, key):
            continue
        if key == "seed":
            cfg.seed = saved.seed
            continue
        section = OmegaConf.create(OmegaConf.to_container(saved[key]))
        for o in parsed:
            if o.key_or_group.startswith(key + ".") and not o.is_delete():
                OmegaConf.update(section, o.key_or_group[len(key) + 1 :], o.value(), force_add=True)
        if key == "eval":  # a typed node takes a node of its own type
            section = OmegaConf.merge(OmegaConf.structured(EvalConfig), section)
        with open_dict(cfg):
            cfg[key] = section
    now, then = OmegaConf.to_container(cfg.env, resolve=True), OmegaConf.to_container(saved.env)
    if now == then:
        return None
    if now["name"] != then["name"]:
        return f"mode=eval: evaluating on env={now['name']}; the checkpoint was trained on env={then['name']}"
    changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    return (
        "mode=eval: evaluating with "
        + ", ".join(f"env.{k}={now.get(k)}" for k in changed)
        + "; the checkpoint was trained with "
        + ", ".join(f"env.{k}={then.get(k)}" for k in changed)
    )


def sweep_jobs(overrides: list[str], config_loader=None) -> list[list[str]]:
    """Each job's overrides, in the order Hydra's basic sweeper numbers the jobs (`a=1,2 b=x,y`: a=1 b=x, a=1 b=y,
    ...); `config_loader`, Hydra's, lets glob(*) list a group's options."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, max_batch_size=None) for job in batch]


def load_plugins(modules: list[str]) -> list[str]:
    """Import each plugin module, which registers its algorithms and environments by name; return the
    `conf/` directories beside them (a package's own `conf/`), for Hydra's config search path."""
    import importlib

    algos.names(), envs.names()  # rlexp's own first, so a plugin that reuses one of their names is refused
    conf_dirs = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):  # the plugin itself, not one of its imports
                raise ConfigError(
                    f"plugins: cannot import {name!r} ({exc}); is its package on PYTHONPATH or installed?"
                ) from None
            raise ConfigError(f"plugins: importing {name!r} failed: {exc}") from None
        except Exception as exc:  # the plugin's own code failed, e.g. a name registered twice
            raise ConfigError(f"plugins: importing {name!r} failed: {type(exc).__name__}: {exc}") from None
        for folder in getattr(module, "__path__", []):
            if Path(folder, "conf").is_dir() and str(Path(folder, "conf")) not in conf_dirs:
                conf_dirs.append(str(Path(folder, "conf")))
    return conf_dirs
