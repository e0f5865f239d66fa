"""`algo.actor` and `algo.actor_lag` of an off-policy algorithm (Jackpot): which model writes the rollouts, checked
before any model loads. The machinery that runs the actor and records its log-probs is rlexp/trainers/actor_rollouts.py."""

from __future__ import annotations

from rlexp.errors import ConfigError
from rlexp.schema import VLLM_MODES, ModelConfig, check_available, structured


def actor_model_config(actor) -> ModelConfig | None:
    """algo.actor ("self", a hub id or checkpoint path, or a model config mapping) as a ModelConfig; None for "self"."""

    if actor == "self":
        return None
    if isinstance(actor, str):
        return ModelConfig(name=actor, pretrained=actor)
    node = dict(actor)
    node.setdefault("name", "actor")
    try:
        return structured(ModelConfig, node)
    except ConfigError as exc:
        raise ConfigError(f"algo.actor: {exc}") from None


def check_actor(actor: ModelConfig | None, actor_lag: int, trl: dict, algo: str) -> None:
    """The checks of algo.actor (here a ModelConfig, None for the policy itself) and algo.actor_lag that must pass
    before any model loads; `trl` is algo.trl. Raises ConfigError."""
    if actor_lag < 0:
        raise ConfigError(f"algo.actor_lag must be 0 or more; got {actor_lag}")
    if actor_lag and actor is not None:
        raise ConfigError("algo.actor_lag makes a stale copy of the policy: it needs algo.actor=self")
    if actor is not None:
        try:
            check_available(actor)  # a hub actor, offline and not cached: fail now, not after the policy loads
        except ConfigError as exc:
            raise ConfigError(f"algo.actor: {exc}") from None
    # both models' log-probs are compared as softmax(logits / temperature), whatever generates: sampling must not
    # truncate the distribution
    plain_sampling = {"top_p": (1.0,), "top_k": (0, None), "min_p": (None, 0.0), "repetition_penalty": (1.0,)}
    for name, plain in plain_sampling.items():
        if trl.get(name, plain[0]) not in plain:
            raise ConfigError(f"algo.trl.{name}={trl[name]}: algo={algo} records the actor's log-probs at the sampling "
                              f"temperature only; leave {name} at {plain[0]}")  # fmt: skip


def check_actor_engine(actor: ModelConfig | None, generation: str) -> None:
    """The actor against the run's generation mode (`generation`: its name). Raises ConfigError."""
    if actor is None or generation not in VLLM_MODES:
        return
    if actor.pretrained is None:
        raise ConfigError(
            f"with generation={generation} the actor is the model vLLM runs, which needs its weights on disk: set "
            "algo.actor=self or a hub id / path"
        )
    if generation != "vllm_server":
        raise ConfigError(
            "a separate actor with vLLM needs generation=vllm_server, whose server runs the actor (a colocated engine "
            "runs the policy)"
        )
