"""`python -m rlexp [group=option ...] [key=value ...]`: compose, validate, launch.

Hydra runs here, once, in the parent process. Before Hydra starts, every combination of the
command line's overrides is composed and validated, so a typo or an impossible setting is
reported as one line (exit code 2) before any model loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import string
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from rlexp.console import error, exit_now, libraries_to_stderr, say
from rlexp.errors import ConfigError
from rlexp.schema import CONF_DIR

# most sweep combinations checked before a multirun starts; the rest are checked as each job starts
MAX_PREFLIGHT = 64


def _options(group: str) -> list[str]:
    """The options of `group`, those in its sub-folders too (experiment=paper/sdpo_livecode_qwen3_8b)."""
    folder = Path(CONF_DIR, group)
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def describe(exc: BaseException) -> str:
    """One line from Hydra's and OmegaConf's multi-line composition errors."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return f"unknown {group} {option!r}; valid: {', '.join(_options(group))}"
    cause = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key and cause.object_type:
        from rlexp.config import suggest

        where, _, key = cause.full_key.rpartition(".")
        known = [f.name for f in dataclasses.fields(cause.object_type)] if dataclasses.is_dataclass(cause.object_type) else []
        renamed = getattr(cause.object_type, "renamed_knobs", {}).get(key)
        close = f"{where}.{renamed}" if renamed else suggest(key, where, known)
        hint = (f"; it is now {close}" if renamed else f"; did you mean {close}?") if close else ""
        return f"unknown key {cause.full_key!r}: {where or 'the top level'} has no {key!r}{hint}"
    if cause is not None:
        first = str(cause).splitlines()[0]
        key = getattr(cause, "full_key", None)
        return f"{key}: {first}" if key else first
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# Hydra's flags that only show information; the command line is then not checked
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc"}
# Hydra's flags that take a value (`--cfg job`): that value is not an override
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def overrides_of(argv: list[str]) -> list[str]:
    """The `key=value` and `group=option` arguments of a command line, less Hydra's flags and their values."""
    overrides, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS
        elif not arg.lstrip("+~").startswith("hydra") or arg.startswith("hydra.searchpath="):
            overrides.append(arg)
    return overrides


def with_plugins(argv: list[str]) -> list[str]:
    """Import the modules a `plugins=[...]` argument names (they register their algorithms and
    environments) and put their `conf/` directories on Hydra's search path."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rlexp.config import load_plugins

    given = [a for a in argv if a.lstrip("+").startswith("plugins=")]
    if not given:
        return argv
    value = OverridesParser.create().parse_override(given[-1].lstrip("+")).value()
    conf_dirs = load_plugins([value] if isinstance(value, str) else list(value))
    if any(a.startswith("hydra.searchpath=") for a in argv):
        raise ConfigError("plugins= sets hydra.searchpath from the plugins' conf/ directories; give one or the other")
    return [*argv, "hydra.searchpath=[" + ",".join(f"'file://{d}'" for d in conf_dirs) + "]"] if conf_dirs else argv


def preflight(argv: list[str]) -> None:
    """Compose and validate what Hydra will run (also for `--cfg`); print one line and exit 2 on the first error."""
    if any(a.split("=", 1)[0] in INFO_FLAGS for a in argv):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rlexp.config import from_training_run, sweep_jobs, training_run, validate

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            # the config loader lets glob(*) list a group's options
            jobs = sweep_jobs(overrides_of(argv), GlobalHydra.instance().config_loader())[:MAX_PREFLIGHT]
            for job in jobs:
                cfg = compose(config_name="config", overrides=job)
                from_training_run(cfg, job)
                validate(cfg, machine=False)  # each run checks the GPUs as it starts
    except (ConfigError, HydraException, OmegaConfBaseException) as exc:  # a bug in our code keeps its traceback
        error(describe(exc))
        sys.exit(2)
    if _asks_for_job_config(argv) and len(jobs) == 1 and cfg.mode == "eval" and training_run(cfg.checkpoint):
        # Hydra would print the config before mode=eval takes the training run's settings: print what will run
        print(OmegaConf.to_yaml(cfg), end="", flush=True)
        sys.exit(0)


def help_text(argv: list[str]) -> str:
    """`--help`, as conf/hydra/default.yaml's help template says, made here: Hydra's own lists the config groups by
    copying its whole config store once per group, about a second with rlexp's schemas in it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides_of(argv), return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        groups = sorted(g for g in loader.list_groups("") if g not in ("hydra", "schema"))  # schema/*: not picked
        listing = "".join(f"{g}: {', '.join(_loaded_options(loader, g))}\n" for g in groups)
    template = cfg.hydra.help.template
    with open_dict(cfg):
        del cfg["hydra"]
    return string.Template(template).safe_substitute(APP_CONFIG_GROUPS=listing, CONFIG=OmegaConf.to_yaml(cfg))


def _loaded_options(loader, group: str) -> list[str]:
    """The options of `group` on Hydra's search path (plugins' conf/ too), those of its sub-groups as `sub/option`."""
    options = list(loader.get_group_options(group))
    for sub in loader.list_groups(group):
        options += [f"{sub}/{option}" for option in _loaded_options(loader, f"{group}/{sub}")]
    return sorted(options)


def _asks_for_job_config(argv: list[str]) -> bool:
    return any(a in ("--cfg", "-c") and b == "job" for a, b in zip(argv, argv[1:])) or "--cfg=job" in argv


def run_name(*, _root_: DictConfig) -> str:
    """`<stages>_<env>` for the run directory: `sft-grpo_generalpoints`, `eval_generalpoints`."""
    from rlexp.config import eval_env_name

    if _root_.mode != "train":
        return f"{_root_.mode}_{eval_env_name(_root_, list(_root_.hydra.overrides.task))}"
    return f"{'-'.join([*_root_.prepare, _root_.algo.name])}_{_root_.env.name}"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from rlexp.checkpoints import hand_on
    from rlexp.config import from_training_run, validate
    from rlexp.launch import gpu_slot, launch, server_gpus_apart

    with contextlib.redirect_stdout(io.StringIO()):
        # prints "[INFO] Running in WANDB offline mode" on import, whatever the logger: not ours to say
        import transformers.integrations.integration_utils  # noqa: F401
    try:
        # first: the run's process sees only its slot's GPUs, less those of a vLLM server
        with libraries_to_stderr(), gpu_slot(cfg.launcher), server_gpus_apart(cfg):
            note = from_training_run(cfg, list(HydraConfig.get().overrides.task))
            if note:
                say(f"[rlexp] {note}")
            validate(cfg)  # again, per job: a sweep larger than MAX_PREFLIGHT was only partly checked
            # data the config points at is only read now (e.g. demonstrations too long for algo.max_length)
            summary = launch(cfg)
    except ConfigError as exc:
        error(str(exc))
        sys.exit(2)
    say(f"[rlexp] run directory: {summary['run_dir']}")
    if summary["status"] == "interrupted":
        say("[rlexp] interrupted with a checkpoint: rerun the same command (the same hydra.run.dir) to continue")
        hand_on(summary["exit_code"] - 128)  # in a Slurm job started by submitit: requeued, to continue
        sys.exit(summary["exit_code"])


def main() -> None:
    with libraries_to_stderr():
        from rlexp.config import register_schemas

        try:
            sys.argv[1:] = with_plugins(sys.argv[1:])
        except ConfigError as exc:
            error(str(exc))
            exit_now(2)
        register_schemas()
    OmegaConf.register_new_resolver("rlexp.run_name", run_name, replace=True)
    try:
        if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
            with libraries_to_stderr():
                text = help_text(sys.argv[1:])
            print(text, flush=True)
            exit_now(0)
        preflight(sys.argv[1:])
        hydra_main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if end_pool_workers():  # the runs were in the pool's processes: this one ends the usual way, cleaning up after it
        sys.exit(code)
    # everything is written and finished, and the verifier and sandbox workers end when their pipes
    # close: skip the interpreter's slow teardown
    exit_now(code)


def end_pool_workers() -> bool:
    """hydra/launcher=joblib leaves loky's worker processes waiting for more work for minutes, holding this
    command's stdout open: end them with the sweep. Whether there were any."""
    executor = getattr(sys.modules.get("joblib.externals.loky.reusable_executor"), "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
    return executor is not None


if __name__ == "__main__":
    main()
