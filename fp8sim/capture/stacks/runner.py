"""Running one real-stack group on the GPU into one size-capped ``.npz`` file.

`run_family` looks the group up in `fp8sim.capture.stacks.STACK_GROUPS`, records the
environment (`env_info`), sets torchao's kernels up where the group needs torchao, and
calls the function the registry names; whatever a case raises is recorded in the file's
``failures`` and the others are kept. Imported only where torch exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch

from fp8sim.capture.saver import Saver
from fp8sim.capture.stacks import STACK_GROUPS

__all__ = ["run_family", "env_info"]

Log = Callable[[str], None]


def env_info() -> dict:
    """Versions of torch, CUDA, triton, torchao, cuBLASLt, the GPU and its driver."""
    import triton
    e = {"torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton.__version__,
         "gpu": torch.cuda.get_device_name(),
         "sm_count": torch.cuda.get_device_properties(0).multi_processor_count}
    try:
        import torchao
        e["torchao"] = torchao.__version__
    except ImportError as ex:
        e["torchao"] = f"not importable: {ex}"
    try:
        import ctypes
        lib = ctypes.CDLL("libcublasLt.so.13")
        e["cublaslt_version"] = int(lib.cublasLtGetVersion())
    except OSError:
        pass
    try:
        import subprocess
        e["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return e


def run_family(name: str, path: str | Path, *, log: Log = print, limit_mib: float = 15.5,
               deepgemm_src: str | None = None) -> Path:
    """Runs one family on the GPU and writes its .npz (at most `limit_mib` MiB) to `path`."""
    if name not in STACK_GROUPS:
        raise ValueError(f"name: expected one of {', '.join(STACK_GROUPS)}, got {name!r}")
    family = STACK_GROUPS[name]
    module, function = family.runner.rsplit(".", 1)
    env = env_info()
    ctx: dict = {"deepgemm_src": deepgemm_src}
    if "torchao" in family.needs:
        from fp8sim.capture.stacks.torchao_blockwise import tao_setup
        ctx["tao"] = tao_setup()
        env["triton_pinned"] = ctx["tao"]["pinned"]
    elif deepgemm_src:
        env["deep_gemm_src"] = str(deepgemm_src)
    saver = Saver(Path(path), env, int(limit_mib * 2**20), log)
    try:
        run = getattr(importlib.import_module(f"fp8sim.capture.stacks.{module}"), function)
        run(saver, ctx)
    except Exception:  # noqa: BLE001 - keep what was captured
        saver.fail(f"family {name}")
    return saver.write()
