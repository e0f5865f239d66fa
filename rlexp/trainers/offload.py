"""A whole model copy kept in CPU memory between uses: SDPO's EMA teacher (`algo.teacher_offload`), Jackpot's actor
(`algo.actor_offload`). It moves to the training device for its passes and back after them, so the GPU holds it only
while it runs; the EMA update is done in CPU memory, one parameter at a time."""

from __future__ import annotations

import contextlib
import copy

import torch


def cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` in CPU memory, made one tensor at a time: the device `model` is on never holds a second
    whole copy (tied weights stay tied)."""
    memo = {id(p): torch.nn.Parameter(p.detach().to("cpu", copy=True), requires_grad=False) for p in model.parameters()}
    memo.update({id(b): b.detach().to("cpu", copy=True) for b in model.buffers()})
    twin = copy.deepcopy(model, memo)
    twin.eval()
    return twin


@contextlib.contextmanager
def on_device(model: torch.nn.Module, device: torch.device):
    """`model` on `device` inside the block, back in CPU memory after it (also when the block fails)."""
    model.to(device)
    try:
        yield model
    finally:
        model.to("cpu")


@torch.no_grad()
def ema_update_in_cpu_memory(target: torch.nn.Module, source: torch.nn.Module, rate: float) -> None:
    """target <- (1 - rate) target + rate source for `target` in CPU memory: TRL's SyncRefModelCallback's arithmetic,
    with each of `source`'s parameters brought over in turn."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.data.mul_(1.0 - rate).add_(s.data.to(t.device), alpha=rate)


def parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes of `model`'s parameters (each tied tensor counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def autocast_like(args, device: torch.device):
    """The autocast of the run's precision (`args.bf16`, `args.fp16`) on `device`, for a model that accelerate never
    prepared (it wraps the forward of those it prepares in it); no autocast at fp32."""
    half = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    return torch.autocast(device.type, dtype=half) if half is not None else contextlib.nullcontext()
