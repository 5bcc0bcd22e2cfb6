"""How the networks run, not what they compute: memory layout, precision, activation checkpointing and
compilation (``ModelConfig.channels_last``, ``precision``, ``checkpointing``, ``compile``). Each
changes speed or memory, not the method; docs/performance.md gives what each buys and
tests/test_compute.py that the fast path matches the plain one."""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ClimodeError

PRECISIONS = ("float32", "bfloat16", "auto")


def use_channels_last(module: nn.Module) -> nn.Module:
    """Store ``module``'s convolution weights channels-last (NHWC), so every convolution runs and
    returns NHWC: on CPU (oneDNN) this removes the layout copies around each convolution and the slow
    NCHW kernels of few-channel layers. Values are those of NCHW within float rounding."""
    return module.to(memory_format=torch.channels_last)


def has_bfloat16_units(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 arithmetic in hardware: a CUDA GPU that supports it, or a CPU
    with AMX tiles or AVX-512 BF16. Without them bfloat16 convolutions are emulated and slower than
    float32 (4x on a 2-core Xeon with AVX-512 but no BF16: docs/performance.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's own probes (private API)
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def lowered(precision: str, like: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast to bfloat16 on ``like``'s device when ``precision`` asks for it ("bfloat16", or "auto" on a
    device with bfloat16 units: ``has_bfloat16_units``), else nothing: the convolutions run in
    bfloat16, their callers keep states, compositions and losses in float32."""
    if precision == "float32" or (precision == "auto" and not has_bfloat16_units(like.device)):
        return contextlib.nullcontext()
    return torch.autocast(like.device.type, dtype=torch.bfloat16)


CHUNK = 8  # samples per checkpointed call: the recomputed activations held at once


COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def _call(module: nn.Module, *inputs: torch.Tensor):
    return module(*inputs)


@functools.cache
def _compiled(mode: str):
    """``_call`` through torch.compile in ``mode``: one function for every network, compiled once per
    structure (parameters are its inputs, so a copy of a model, as the moving average, reuses its
    graphs), shapes dynamic. A model has a handful of structures, each with and without gradients:
    more than dynamo's default of 8 graphs per function, past which it would run the rest eagerly."""
    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.7's name
    setattr(config, limit, max(getattr(config, limit), 64))
    return torch.compile(_call, mode=mode, dynamic=True)


def configure(model: nn.Module, checkpointing: bool, compile: str) -> None:
    """Set how every part of ``model`` that calls ``run`` with settings of its own runs: ``checkpointing``
    on those that declare it (the decoders), ``compile_mode`` on those that declare that."""
    for part in model.modules():
        if hasattr(part, "checkpointing"):
            part.checkpointing = checkpointing
        if hasattr(part, "compile_mode"):
            part.compile_mode = compile


def run(module: nn.Module, *inputs: torch.Tensor, checkpointing: bool = False, compile: str = "off"):
    """``module(*inputs)`` (a tensor or a tuple of tensors, batch first), its activations recomputed in
    the backward pass instead of kept when ``checkpointing`` and gradients are on: called on CHUNK
    samples at a time, so that the backward pass holds one chunk's activations (memory for time; the
    same values and gradients for modules whose samples are independent, as GroupNorm's are), and
    through torch.compile in mode ``compile`` unless "off"."""
    call = _call if compile == "off" else _compiled(compile)
    if not (checkpointing and torch.is_grad_enabled()):
        return call(module, *inputs)
    parts = [
        checkpoint(call, module, *(x[i : i + CHUNK] for x in inputs), use_reentrant=False)
        for i in range(0, len(inputs[0]), CHUNK)
    ]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(values) for values in zip(*parts))


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refused with one line when this machine or this torch cannot
    provide it (a CPU-only torch asked for CUDA, a GPU index past the last one)."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ClimodeError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps): {exc}") from None
    if target.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ClimodeError(f"CUDA requested ({device}) but this torch has no CUDA; use --device cpu")
        if not torch.cuda.is_available():
            raise ClimodeError(f"CUDA requested ({device}) but no CUDA GPU is visible here; use --device cpu")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ClimodeError(f"{device} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise ClimodeError(f"MPS requested ({device}) but it is not available here; use --device cpu")
    return target
