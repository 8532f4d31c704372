"""Numba kernels of the GEMM engine (private; `fp8sim.gemm` validates and calls them).

The fused MMA step is computed in float32 lanes, exactly:
  * pass 1 finds 2**emax per output column as max(2**ea * 2**eb) (powers of two,
    zero for zero values) and the exponent of C;
  * pass 2 adds int32(a * b * 2**(F - emax)) over the step: each product is exact
    in float32, the scaling by a power of two is exact, and float->int conversion
    truncates toward zero, which is the alignment the hardware does;
  * the int32 sum is converted to float64 (exact), truncated to F+1 significant bits
    by masking its mantissa, and scaled back by 2**(emax - F) (exact, F <= 23).
Every operation above is exact or is the truncation being modelled, so the lanes
give the reference's bits. Work is parallel over output tiles, never over K, so the
result does not depend on the thread count. No fastmath anywhere.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

IB = 8  # rows of a tile
JB = 64  # columns of a tile


@intrinsic
def fma_f32(typingctx, x, y, z):
    """float32 fused multiply-add with one rounding (llvm.fma.f32)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fnty = ir.FunctionType(f32, [f32, f32, f32])
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], fnty)
        return builder.call(fn, args)

    return sig, codegen


@nb.njit(cache=True, inline="always")
def _promote(acc, part, scaled, sa, sb_row, j0, nj):
    """acc += part (float32, RNE) or acc = fma(part, float32(sa * sb[j // 128]), acc)."""
    if scaled:
        for j in range(nj):
            s = np.float32(sa * sb_row[(j0 + j) // 128])
            acc[j] = fma_f32(part[j], s, acc[j])
    else:
        for j in range(nj):
            acc[j] = acc[j] + part[j]


@nb.njit(cache=True, inline="always")
def _fused_step(arow_v, arow_g, bblk_v, bblk_g, nk, nj, part, m, scale, isum, ssum, frac, mask,
                mask64, special):
    """One fused MMA step for one row of a tile: part <- step(part, nk products per column).

    arow_*: (terms,) values and 2**exponent of A's row; bblk_*: (terms, JB) of B's block.
    """
    two_f = np.float32(2.0**frac)
    pbits = part.view(np.uint32)
    for j in range(nj):
        m[j] = np.float32(0.0)
    # pass 1: 2**emax over the nonzero products (zero values have 2**e = 0)
    for kk in range(nk):
        a = arow_g[kk]
        if a != 0:
            brow = bblk_g[kk]
            for j in range(nj):
                p = a * brow[j]
                m[j] = p if p > m[j] else m[j]
    # C joins emax through its exponent field (0 for zero and subnormal C)
    for j in range(nj):
        cexp = np.uint32(pbits[j] & np.uint32(0x7F800000)).view(np.float32)
        e = cexp if cexp > m[j] else m[j]
        scale[j] = two_f / e if m[j] != 0 else np.float32(0.0)
        c = part[j] * scale[j]
        isum[j] = np.int32(c) if m[j] != 0 and cexp != np.float32(np.inf) else np.int32(0)
        ssum[j] = np.float32(0.0)
    # pass 2: exact products scaled by 2**(F - emax), truncated toward zero, summed
    for kk in range(nk):
        a = arow_v[kk]
        brow = bblk_v[kk]
        if special:  # no skipping of zero a: 0 * Inf must give NaN
            for j in range(nj):
                p = a * brow[j]
                finite = abs(p) < np.float32(np.inf)
                ssum[j] += np.float32(0.0) if finite else p
                isum[j] += np.int32(p * scale[j]) if finite else np.int32(0)
        elif a != 0:
            for j in range(nj):
                isum[j] += np.int32(a * brow[j] * scale[j])
    for j in range(nj):
        c = part[j]
        if m[j] == 0:
            # no nonzero product: C passes through, truncated to F fractional bits; a
            # nonzero C truncated to nothing is an integer sum of zero: +0
            t = np.uint32(pbits[j] & mask).view(np.float32)
            if c != 0:
                t = t + np.float32(0.0)
        else:
            s = np.float64(isum[j])  # exact; masking its mantissa truncates to F+1 bits
            kept = np.uint64(s.view(np.uint64) & mask64).view(np.float64)
            t = np.float32(kept / np.float64(scale[j]))
        c_finite = abs(c) < np.float32(np.inf)
        if not c_finite:  # Inf or NaN C wins over finite products
            t = c
        if special and ssum[j] != 0:  # Inf/NaN products: their float32 sum (Inf or NaN)
            t = ssum[j] if c_finite else ssum[j] + c
        part[j] = t


@nb.njit(cache=True, parallel=True)
def fused_gemm(a, b, tav, tag, tbv, tbg, c, has_c, terms, frac, chunk, promoted, group, sa, sb,
               out):
    """Chains fused MMA steps along K for every output, promoting every `chunk` elements.

    a (M, K) and b (K, N) are uint8 codes, decoded block by block through the tables
    tav/tbv (float32 values) and tag/tbg (2**exponent, 0 for zero and non-finite codes).
    chunk: K elements per partial sum; promoted: add each partial into an FP32
    accumulator (False: the chain runs through, chunk >= K). group: at each promotion apply
    sa (M, G) and sb (G, ceil(N/128)) with an fma.
    """
    M, K = a.shape
    N = b.shape[1]
    ni = (M + IB - 1) // IB
    nj = (N + JB - 1) // JB
    mask = np.uint32((0xFFFFFFFF << (23 - frac)) & 0xFFFFFFFF)
    mask64 = np.uint64(((1 << 64) - 1) ^ ((1 << (52 - frac)) - 1))
    for t in nb.prange(ni * nj):
        i0 = (t // nj) * IB
        j0 = (t % nj) * JB
        mi = min(IB, M - i0)
        mj = min(JB, N - j0)
        part = np.zeros((IB, JB), dtype=np.float32)
        acc = np.zeros((IB, JB), dtype=np.float32)
        ablk_v = np.zeros((IB, terms), dtype=np.float32)
        ablk_g = np.zeros((IB, terms), dtype=np.float32)
        bblk_v = np.zeros((terms, JB), dtype=np.float32)
        bblk_g = np.zeros((terms, JB), dtype=np.float32)
        m = np.empty(JB, dtype=np.float32)
        scale = np.empty(JB, dtype=np.float32)
        isum = np.empty(JB, dtype=np.int32)
        ssum = np.empty(JB, dtype=np.float32)
        if has_c:
            for ii in range(mi):
                for j in range(mj):
                    part[ii, j] = c[i0 + ii, j0 + j]
        g = 0
        for c0 in range(0, K, chunk):
            c1 = min(c0 + chunk, K)
            for k0 in range(c0, c1, terms):
                nk = min(k0 + terms, c1) - k0
                special = False
                for kk in range(nk):
                    for j in range(mj):
                        code = b[k0 + kk, j0 + j]
                        bblk_v[kk, j] = tbv[code]
                        bblk_g[kk, j] = tbg[code]
                    for j in range(mj):
                        special = special or not abs(bblk_v[kk, j]) < np.float32(np.inf)
                for ii in range(mi):
                    for kk in range(nk):
                        code = a[i0 + ii, k0 + kk]
                        ablk_v[ii, kk] = tav[code]
                        ablk_g[ii, kk] = tag[code]
                        special = special or not abs(ablk_v[ii, kk]) < np.float32(np.inf)
                for ii in range(mi):
                    _fused_step(ablk_v[ii], ablk_g[ii], bblk_v, bblk_g, nk, mj, part[ii], m,
                                scale, isum, ssum, frac, mask, mask64, special)
            if promoted:
                for ii in range(mi):
                    _promote(acc[ii], part[ii], group, sa[i0 + ii, g] if group else
                             np.float32(0.0), sb[g] if group else sb[0], j0, mj)
                    for j in range(mj):
                        part[ii, j] = np.float32(0.0)
            g += 1
        res = acc if promoted else part
        for ii in range(mi):
            for j in range(mj):
                out[i0 + ii, j0 + j] = res[ii, j]


@nb.njit(cache=True, parallel=True)
def sequential_gemm(av, bv, c, has_c, chunk, promoted, group, sa, sb, out, wide):
    """Plain IEEE accumulation one product at a time: float32 (ideal) or float64 (wide)."""
    M, K = av.shape
    N = bv.shape[1]
    for i in nb.prange(M):
        acc = np.zeros(N, dtype=np.float32)
        part32 = np.zeros(N, dtype=np.float32)
        part64 = np.zeros(N, dtype=np.float64)
        if has_c:
            for j in range(N):
                part32[j] = c[i, j]
                part64[j] = c[i, j]
        g = 0
        for c0 in range(0, K, chunk):
            c1 = min(c0 + chunk, K)
            for k in range(c0, c1):
                a = av[i, k]
                if wide:
                    for j in range(N):
                        part64[j] = part64[j] + np.float64(a) * np.float64(bv[k, j])
                else:
                    for j in range(N):
                        part32[j] = part32[j] + a * bv[k, j]
            if wide:
                for j in range(N):
                    part32[j] = np.float32(part64[j])
                    part64[j] = 0.0
            if promoted:
                _promote(acc, part32, group, sa[i, g] if group else np.float32(0.0),
                         sb[g] if group else sb[0], 0, N)
                for j in range(N):
                    part32[j] = np.float32(0.0)
            g += 1
        res = acc if promoted else part32
        for j in range(N):
            out[i, j] = res[j]
