"""Compiles every kernel of the GPU engine's CUDA source with NVRTC, no GPU needed.

Usage: python scripts/compile_gpu_source.py [SOURCE]   (make gpu-compile installs NVRTC)

The GPU engine (fp8sim/engine/_gpu.py) compiles `_gpu_gemm.cu` through CuPy on first use;
a machine without a GPU cannot run it, but NVRTC (pip: nvidia-cuda-nvrtc-cu12) compiles
it anywhere, so an edit to the source is checked before it meets a GPU. Compiles for
sm_90 (Hopper) with the engine's options (--fmad=false), each instantiation the engine
launches; prints the log and exits non-zero on an error.
"""

from __future__ import annotations

import ctypes
import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "fp8sim" / "engine" / "_gpu_gemm.cu"
KERNELS = [f"gemm_tiled<{mode}, {t}, {p}>" for mode in (0, 1, 2) for t in (16, 32)
           for p in ("true", "false")] + ["gemm_generic", "promote_parts"]


def nvrtc() -> ctypes.CDLL:
    """libnvrtc from the nvidia-cuda-nvrtc wheel (or the system's), else SystemExit."""
    found = []
    try:
        import nvidia.cuda_nvrtc as pkg

        found = glob.glob(str(Path(list(pkg.__path__)[0]) / "lib" / "libnvrtc.so*"))
    except ImportError:
        pass
    for name in [*sorted(found), "libnvrtc.so"]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise SystemExit("NVRTC not found: pip install nvidia-cuda-nvrtc-cu12 (make gpu-compile)")


def compile_source(source: Path, kernels: list[str]) -> tuple[int, str]:
    """(NVRTC's status, its log) for `source` with each name expression in `kernels`."""
    lib = nvrtc()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.read_bytes(), source.name.encode(),
                                0, None, None)
    if rc:
        return rc, "nvrtcCreateProgram failed"
    for name in kernels:
        lib.nvrtcAddNameExpression(prog, name.encode())
    opts = [b"--fmad=false", b"--gpu-architecture=compute_90", b"--std=c++17"]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return rc, log.value.decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    source = Path(argv[0]) if argv else SOURCE
    rc, log = compile_source(source, KERNELS)
    if log.strip():
        print(log.strip())
    print(f"{source.name}: {len(KERNELS)} kernels, " + ("compiled" if rc == 0 else
                                                         f"NVRTC error {rc}"))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
