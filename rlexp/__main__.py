"""`python -m rlexp [group=option ...] [key=value ...]`: compose, validate, launch.

Hydra runs here, once, in the parent process. Before Hydra starts, every combination of the
command line's overrides is composed and validated, so a typo or an impossible setting is
reported as one line (exit code 2) before any model loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rlexp.config import register_schemas, validate
from rlexp.errors import ConfigError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
# most sweep combinations checked before a multirun starts; the rest are checked as each job starts
MAX_PREFLIGHT = 64


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in Path(CONF_DIR, group).glob("*.yaml"))


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
        where, _, key = cause.full_key.rpartition(".")
        known = [f.name for f in dataclasses.fields(cause.object_type)] if dataclasses.is_dataclass(cause.object_type) else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {where + '.' if where else ''}{close[0]}?" if close else ""
        return f"unknown key {cause.full_key!r}: {where or 'the top level'} has no {key!r}{hint}"
    if cause is not None:
        first = str(cause).splitlines()[0]
        key = getattr(cause, "full_key", None)
        return f"{key}: {first}" if key else first
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _sweep_combinations(overrides: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # the config loader lets glob(*) list a group's options
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides(overrides)
    combos = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in combos for job in batch][:MAX_PREFLIGHT]


def preflight(argv: list[str]) -> None:
    """Compose and validate what Hydra will run; print one line and exit 2 on the first error."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return  # --help, --cfg, --info ...: Hydra's own business
    overrides = [a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            for job in _sweep_combinations(overrides):
                validate(compose(config_name="config", overrides=job))
    except (ConfigError, HydraException, OmegaConfBaseException) as exc:  # a bug in our code keeps its traceback
        print(f"rlexp: error: {describe(exc)}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> dict:
    from rlexp.launch import launch

    try:
        validate(cfg)  # again, per job: a sweep larger than MAX_PREFLIGHT was only partly checked
        # data the config points at is only read now (e.g. demonstrations too long for algo.max_length)
        return launch(cfg)
    except ConfigError as exc:
        print(f"rlexp: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    register_schemas()
    preflight(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
