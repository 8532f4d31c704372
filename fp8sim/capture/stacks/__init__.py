"""The real-FP8-stack capture groups as data: what each captures, what it needs, who runs it.

`STACK_GROUPS` is the one registry of these groups (issue 10): `fp8sim.capture.cases` lists
them among its groups, `fp8sim.capture.run` checks their `needs`, and
`fp8sim.capture.stacks.runner` runs the function each names. One module per stack does
the GPU work (imported only there, with torch):

- `torchao_blockwise`: torchao's blockwise GEMMs (cuBLASLt and Triton) and their casts;
- `torchao_casts`: torchao's blockwise and Float8 casts, DeepGEMM's test casts;
- `torchao_layers`: one bf16 ``nn.Linear`` under torchao's FP8 training recipes;
- `deepgemm`: DeepGEMM's ``gemm_fp8_fp8_bf16_nt``;
- `common` (torch helpers: seeded draws, raw bits) and `runner` (one group into one file).

This module itself needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StackFamily", "STACK_GROUPS"]


@dataclass(frozen=True)
class StackFamily:
    """A capture group of a real FP8 stack: its inputs are drawn and cast on the GPU by the
    stack itself, so it has no numpy cases."""

    name: str
    description: str
    runner: str
    """``<module>.<function>`` under `fp8sim.capture.stacks` that captures the group."""
    needs: tuple[str, ...] = ("torch", "triton", "torchao")
    """Python modules the GPU machine must have (with "torchao", its kernels are set up
    and pinned first, `torchao_blockwise.tao_setup`)."""
    limit_mib: float = 15.5
    """Largest file written (MiB); cases past it are dropped and listed in ``failures``."""


STACK_GROUPS: dict[str, StackFamily] = {f.name: f for f in (
    StackFamily("blockwise", "torchao blockwise GEMMs, cuBLASLt (F.scaled_mm BlockWise "
                "scaling) and Triton, forward 1x128 x 128x128 and Wgrad 1x128 x 128x1, "
                "float32 and bf16 out, whole, with the Triton config check",
                "torchao_blockwise.fam_blockwise", limit_mib=11.5),
    StackFamily("blockwise-long", "the same at long K: M = N = 128, K = 4096 .. 65536 "
                "(cuBLASLt's split-K), and 512 x 512; cropped",
                "torchao_blockwise.fam_long", limit_mib=10.0),
    StackFamily("blockwise-ds", "the same at DeepSeek-V3's layer shapes (hidden 7168, K up "
                "to 18432, M = 64 .. 4096 tokens); cropped",
                "torchao_blockwise.fam_ds", limit_mib=11.5),
    StackFamily("casts", "torchao's blockwise casts (1x128, 128x1, 128x128, transposed), "
                "torchao Float8 tensorwise / rowwise / colwise casts, DeepGEMM's test casts",
                "torchao_casts.fam_casts", limit_mib=7.0),
    StackFamily("layers", "one bf16 nn.Linear under torchao Float8BlockwiseLinear (cuBLASLt, "
                "Triton) and Float8LinearConfig tensorwise, rowwise, rowwise_with_gw_hp: "
                "y, grad_x, grad_w", "torchao_layers.fam_layers", limit_mib=12.0),
    StackFamily("deepgemm", "DeepGEMM's gemm_fp8_fp8_bf16_nt (JIT, nvcc) with its own test "
                "casts, small and DeepSeek-V3 shapes (cropped)", "deepgemm.fam_deepgemm",
                needs=("torch", "deep_gemm"), limit_mib=10.0),
)}
"""Real-FP8-stack groups (issue 10), one output file each."""
