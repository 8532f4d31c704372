"""The named FP8 recipes: Linear layers (`LinearRecipe`), single GEMMs (`LinearGemm`), lookups.

The torchao recipes were checked against torchao 0.18 on an H200
(golden/thirdparty_public_a.npz, one 256 x 512 -> 384 layer); see each recipe's
`verified`.
"""

from __future__ import annotations

from fp8sim._lookup import lookup
from fp8sim.casts import BlockCast
from fp8sim.engine.epilogue import Epilogue
from fp8sim.engine.kernel import Kernel
from fp8sim.recipes.recipe import GEMMS, LinearGemm, LinearRecipe, gemm_recipe

__all__ = ["LINEAR_RECIPES", "DEEPGEMM_WGRAD", "get_linear_recipe", "GEMM_RECIPES", "get_recipe"]


def _ao(block, fmt="e4m3", pow2=False) -> BlockCast:
    return BlockCast(fmt=fmt, block=block, convention="torchao", pow2_scale=pow2)


def _dg(block) -> BlockCast:
    return BlockCast(block=block, convention="deepgemm")


_TILE, _KTILE, _BLOCK = (1, 128), (128, 1), (128, 128)
_TENSOR, _ROW, _COL = (None, None), (1, None), (None, 1)


DEEPGEMM_WGRAD = Kernel(
    name="deepgemm-wgrad", promote=128,
    scaling=Epilogue(name="group-product-column", scale_a="group", scale_b="group-column",
                     order="product", fused=True),
    description="DeepGEMM-style Wgrad GEMM (1x128 x 128x1): DeepGEMM's verified epilogue, "
                "acc = fma(p, fl(scale_a[i, g] * scale_b[g, j]), acc) at each promotion, with "
                "a scale per column of B. UNVERIFIED: DeepGEMM's own Wgrad kernel "
                "(wgrad_gemm_fp8_fp8_fp32_nt) was not captured.")
"""The Wgrad kernel of the deepseek-v3 recipe (unverified)."""


def _blockwise(name: str, kernel: str, description: str) -> LinearRecipe:
    return LinearRecipe(
        name=name,
        forward=LinearGemm(a=_ao(_TILE), b=_ao(_BLOCK), kernel=kernel),
        grad_input=LinearGemm(a=_ao(_TILE), b=_ao(_BLOCK), kernel=kernel),
        grad_weight=LinearGemm(a=_ao(_TILE), b=_ao(_KTILE), kernel=kernel),
        verified=GEMMS, description=description)


_ROWWISE_FORWARD = LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_COL, pow2=True),
                              kernel="torch-rowwise-fast")
"""torchao rowwise forward: power-of-two row x column scales, torch's fast row-wise kernel."""
_ROWWISE_GRAD = LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_COL, pow2=True), kernel="cublaslt",
                           scales="after")
"""torchao rowwise gradients: cuBLASLt with unit scales to bf16, then x fl32(sa * sb)."""


LINEAR_RECIPES: dict[str, LinearRecipe] = {r.name: r for r in (
    _blockwise(
        "torchao-blockwise", "cublaslt-blockwise",
        "torchao Float8BlockwiseLinear (cuBLASLt backend, torch.nn.functional.scaled_mm "
        "BlockWise): E4M3, torchao's Triton casts: 1x128 tiles of x and gy, 128x128 blocks "
        "of w, and for grad_weight 1x128 tiles of gy.T and 128x1 tiles of x; bf16 out."),
    _blockwise(
        "torchao-blockwise-triton", "torchao-triton-blockwise",
        "torchao Float8BlockwiseLinear(use_triton=True): the casts of torchao-blockwise, "
        "torchao's Triton GEMMs triton_fp8_gemm_1x128_128x128 / _128x1."),
    LinearRecipe(
        name="torchao-tensorwise",
        forward=LinearGemm(a=_ao(_TENSOR), b=_ao(_TENSOR), kernel="cublaslt-fast"),
        grad_input=LinearGemm(a=_ao(_TENSOR, "e5m2"), b=_ao(_TENSOR), kernel="cublaslt"),
        grad_weight=LinearGemm(a=_ao(_TENSOR, "e5m2"), b=_ao(_TENSOR), kernel="cublaslt"),
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'tensorwise': one scale per tensor, "
                    "E4M3 x and w, E5M2 gy; cuBLASLt with fast accumulation for the forward "
                    "GEMM, promotion every 128 for both gradients."),
    LinearRecipe(
        name="torchao-rowwise",
        forward=_ROWWISE_FORWARD,
        grad_input=_ROWWISE_GRAD,
        grad_weight=_ROWWISE_GRAD,
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'rowwise': E4M3 everywhere, one "
                    "power-of-two scale per row of A and per column of B (multipliers rounded "
                    "down); forward: torch's row-wise kernel with fast accumulation; "
                    "gradients: cuBLASLt with unit scales and promotion every 128 to bf16, "
                    "then times fl32(scale_a * scale_b)."),
    LinearRecipe(
        name="torchao-rowwise-gw-hp",
        forward=_ROWWISE_FORWARD,
        grad_input=LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_TENSOR, pow2=True),
                              kernel="cublaslt", scales="after"),
        grad_weight=LinearGemm(a=None, b=None, kernel="hopper-bf16"),
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'rowwise_with_gw_hp': as rowwise, but "
                    "w is cast per tensor for grad_input (its scale repeated per column), and "
                    "grad_weight is a bf16 matmul (cuBLAS: wgmma BF16 k=16 steps, "
                    "fp8sim.engine.bf16)."),
    LinearRecipe(
        name="deepseek-v3",
        forward=LinearGemm(a=_dg(_TILE), b=_dg(_BLOCK), kernel="deepgemm"),
        grad_input=LinearGemm(a=_dg(_TILE), b=_dg(_BLOCK), kernel="deepgemm"),
        grad_weight=LinearGemm(a=_dg(_TILE), b=_dg(_KTILE), kernel=DEEPGEMM_WGRAD),
        verified=("forward", "grad_input"),
        description="DeepSeek-V3's recipe with DeepGEMM: E4M3 everywhere, DeepGEMM's casts "
                    "(1x128 tiles of x and gy, 128x128 blocks of w, 128x1 tiles of x and 1x128 "
                    "of gy.T for grad_weight, float32 scales), DeepGEMM's kernel (fma of "
                    "fl32(scale_a * scale_b) at each promotion every 128), bf16 out. The casts "
                    "and the 1x128 x 128x128 kernel of forward and grad_input are verified on "
                    "DeepGEMM's own outputs; grad_weight's kernel (DEEPGEMM_WGRAD) is not."),
)}
"""Every named Linear-layer recipe."""


def get_linear_recipe(name: str | LinearRecipe, *, arg: str = "recipe") -> LinearRecipe:
    """Looks a Linear recipe up by name; a LinearRecipe passes through."""
    return lookup(name, LINEAR_RECIPES, LinearRecipe, arg=arg, what="recipe")


GEMM_RECIPES: dict[str, LinearGemm] = {r.name: r for r in (
    gemm_recipe(
        name="deepseek-v3",
        description="DeepSeek-V3 / DeepGEMM: E4M3 everywhere, 1x128 activation tiles, "
                    "128x128 weight blocks, float32 scales applied with an fma at each "
                    "promotion every 128 elements of K (DeepGEMM writes bfloat16: set "
                    "out_dtype='bfloat16' for its output type).",
    ),
    gemm_recipe(
        name="deepseek-v3-ue8m0", scale_rule="pow2",
        description="deepseek-v3 with power-of-two (UE8M0) scales, as DeepGEMM's use_ue8m0.",
    ),
    gemm_recipe(
        name="per-tensor", x_block=(None, None), w_block=(None, None), scaling="tensor",
        description="cuBLASLt-style: one float32 scale per tensor (current amax), alpha = "
                    "scale_a * scale_b applied at the end, promotion every 128 (no fast "
                    "accumulation).",
    ),
    gemm_recipe(
        name="fast-accum", x_block=(None, None), w_block=(None, None), scaling="tensor",
        promote=0,
        description="per-tensor with cuBLASLt's CUBLASLT_MATMUL_DESC_FAST_ACCUM: the "
                    "partial sum is never promoted (one wgmma chain along K).",
    ),
    gemm_recipe(
        name="mx", x_block=(1, 32), w_block=(32, 1), scale_rule="mx", promote=32,
        description="OCP MX (MXFP8 E4M3): 32-element blocks along K with E8M0 shared "
                    "exponents. Hopper has no block-scaled MMA, so this is its emulation: "
                    "a promotion every wgmma step (32) with the two power-of-two scales in "
                    "the promotion fma. Blackwell applies the scales inside the MMA, which "
                    "fp8sim does not model. Per-column weight scales cost one engine call "
                    "per distinct scale column (about 50x slower than deepseek-v3).",
    ),
    gemm_recipe(
        name="mx-te", x_block=(1, 32), w_block=(32, 1), scale_rule="mx-up", promote=32,
        description="mx with Transformer Engine's MXFP8 scale rule: the E8M0 scale is "
                    "rounded up from amax / fmt_max, so no element is clamped (the OCP "
                    "rule's floor clamps a block's largest values past fmt_max).",
    ),
)}
"""Named single-GEMM recipes from float inputs (`fp8sim.RECIPES`, `fp8sim.fp8_matmul`)."""


def get_recipe(name: str | LinearGemm, *, arg: str = "recipe") -> LinearGemm:
    """Looks a GEMM recipe up by name; a LinearGemm passes through."""
    return lookup(name, GEMM_RECIPES, LinearGemm, arg=arg, what="recipe")
