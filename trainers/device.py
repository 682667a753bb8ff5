"""Where and how the engine runs: this process's rank and device, the autocast dtype, peak memory, and
the wrappers (DDP, torch.compile) around G and D with ``unwrap`` to reach the module inside."""

from __future__ import annotations

import os
import resource

import torch
import torch.distributed as dist
from torch import nn

from transgan_lab.trainers.models import attention


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_device() -> torch.device:
    """This rank's CUDA device (``LOCAL_RANK``), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where asked or where the device runs it fast ('auto'); None = fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    fast_bf16 = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return torch.bfloat16 if fast_bf16 else None


def peak_mem_mb(device: torch.device) -> float:
    """Peak memory so far: allocated on a CUDA device, the process's max RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def unwrap(m: nn.Module) -> nn.Module:
    """The model inside its DDP and compile wrappers."""
    while isinstance(m, (nn.parallel.DistributedDataParallel, CompiledUnlessDoubleBackward)):
        m = m.module
    return m


class CompiledUnlessDoubleBackward(nn.Module):
    """torch.compile'd forward, except in the gradient-penalty pass: compiled graphs have no
    double backward, so that pass runs the same module eagerly."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.compiled = torch.compile(module)

    def forward(self, *args, **kwargs):
        if attention.math_sdpa_active():
            return self.module(*args, **kwargs)
        return self.compiled(*args, **kwargs)

    def no_sync(self):
        return self.module.no_sync()
