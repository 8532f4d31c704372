"""Numba kernels of the GEMM engine (private; `fp8sim.gemm` validates and calls them).

The fused MMA step is computed in float32 lanes, exactly:
  * pass 1 finds emax per output column as max(ea + eb) in int8 lanes (zero and
    non-finite values far below every real exponent), then the exponent of C joins;
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

IB = 128  # rows of a tile
JB = 128  # columns of a tile
FUSED, IDEAL, EXACT = 0, 1, 2  # step models of gemm_tiles
NONE, PROMOTION, END = 0, 1, 2  # when an epilogue applies its scales (fp8sim.engine.epilogue)
PRODUCT, A_FIRST, B_FIRST = 0, 1, 2  # the order of its multiplications
NO_EXP = np.int8(-64)  # int8 exponent of zero and non-finite codes: below every real one


@nb.njit(cache=True, error_model="numpy")
def _exponents(pow2):
    """int8 log2 of a 2**exponent table (FP8 exponents lie in [-16, 15]), NO_EXP where 0."""
    out = np.empty(pow2.size, dtype=np.int8)
    for i in range(pow2.size):
        bits = np.float32(pow2[i]).view(np.uint32)
        e = np.int32(bits >> np.uint32(23)) - 127
        if pow2[i] == 0:
            out[i] = NO_EXP
        elif e < -16 or e > 15:  # pass 1's int8 sums would no longer be exact
            raise ValueError("exponent table: FP8 exponents in [-16, 15] expected")
        else:
            out[i] = np.int8(e)
    return out


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


@nb.njit(cache=True, inline="always", error_model="numpy")
def _promote(acc, part, when, order, fused, sa, sbv, nj):
    """acc += part (float32, RNE), or with the scales of an epilogue applied at promotion.

    sa: this row's scale_a; sbv: each column's scale_b in this K group. The order picks
    which product is rounded first: PRODUCT (p, fl(sa * sb)), A_FIRST (fl(p * sa), sb),
    B_FIRST (fl(p * sb), sa); fused: acc = fma(left, right, acc), else acc + fl(left * right).
    One loop per variant so that each vectorizes.
    """
    if when != PROMOTION:
        for j in range(nj):
            acc[j] = acc[j] + part[j]
    elif fused:
        if order == PRODUCT:
            for j in range(nj):
                acc[j] = fma_f32(part[j], np.float32(sa * sbv[j]), acc[j])
        elif order == A_FIRST:
            for j in range(nj):
                acc[j] = fma_f32(np.float32(part[j] * sa), sbv[j], acc[j])
        else:
            for j in range(nj):
                acc[j] = fma_f32(np.float32(part[j] * sbv[j]), sa, acc[j])
    else:
        if order == PRODUCT:
            for j in range(nj):
                acc[j] = acc[j] + np.float32(part[j] * np.float32(sa * sbv[j]))
        elif order == A_FIRST:
            for j in range(nj):
                acc[j] = acc[j] + np.float32(np.float32(part[j] * sa) * sbv[j])
        else:
            for j in range(nj):
                acc[j] = acc[j] + np.float32(np.float32(part[j] * sbv[j]) * sa)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _scale_end(res, sa, sbv, order, nj):
    """res = fl(left * right) in place: an epilogue applied once to the accumulator."""
    for j in range(nj):
        if order == PRODUCT:
            res[j] = np.float32(res[j] * np.float32(sa * sbv[j]))
        elif order == A_FIRST:
            res[j] = np.float32(np.float32(res[j] * sa) * sbv[j])
        else:
            res[j] = np.float32(np.float32(res[j] * sbv[j]) * sa)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _fused_step(arow_v, arow_e, bblk_v, bblk_e, nk, nj, part, me, m, scale, inv, isum, isum64,
                ssum, frac, mask, mask64, special):
    """One fused MMA step for one row of a tile: part <- step(part, nk products per column).

    arow_*: (nk,) values and int8 exponents of A's row; bblk_*: (nk, JB) of B's block, nk a
    multiple of 4 (the block is zero-padded). The loops over j are branch-free
    (selects) so that LLVM vectorizes them.
    """
    two_f = np.float32(2.0**frac)
    inv_two_f = np.float32(2.0**-frac)
    one = np.float32(1.0)
    inf = np.float32(np.inf)
    pbits = part.view(np.uint32)
    for j in range(nj):
        me[j] = np.int8(-128)
        ssum[j] = np.float32(0.0)
    # pass 1: emax = max(ea + eb) over the nonzero finite products, in int8 lanes (LLVM
    # vectorizes it to 16-byte vpaddb/vpmaxsb): exponents lie in [-16, 15], zero and
    # non-finite codes are NO_EXP = -64, so a sum with one of them is <= -49, below every
    # real sum (>= -32), and no sum wraps (>= -128). Four rows of the block at a time: the
    # running max is loaded and stored once per four.
    for kk in range(0, nk, 4):
        a0, a1, a2, a3 = arow_e[kk], arow_e[kk + 1], arow_e[kk + 2], arow_e[kk + 3]
        for j in range(nj):
            p0 = np.int8(a0 + bblk_e[kk, j])
            p1 = np.int8(a1 + bblk_e[kk + 1, j])
            p2 = np.int8(a2 + bblk_e[kk + 2, j])
            p3 = np.int8(a3 + bblk_e[kk + 3, j])
            p0 = p0 if p0 > p1 else p1
            p2 = p2 if p2 > p3 else p3
            p0 = p0 if p0 > p2 else p2
            me[j] = p0 if p0 > me[j] else me[j]
    # back to 2**emax as float32 (built from its exponent field, exact), 0 without a product
    for j in range(nj):
        ej = np.int32(me[j])
        pw = np.uint32((ej + 127) << 23).view(np.float32) if ej >= -32 else np.float32(0.0)
        m[j] = pw
    # C joins emax through its exponent field (0 for zero and subnormal C); the C term
    # is C * 2**(F - emax) truncated. Without nonzero products, or with Inf/NaN C, the
    # epilogue below does not use the sum, so any finite scale does.
    for j in range(nj):
        cexp = np.uint32(pbits[j] & np.uint32(0x7F800000)).view(np.float32)
        mj = m[j]
        usable = mj != 0 and cexp != inf
        e = cexp if cexp > mj else mj
        e = e if usable else one
        scale[j] = two_f / e
        inv[j] = e * inv_two_f
        cs = part[j] * scale[j]
        isum[j] = np.int32(cs if usable else np.float32(0.0))
        isum64[j] = np.int64(cs if usable else np.float32(0.0))
    # pass 2: exact products scaled by 2**(F - emax), truncated toward zero, summed
    # (in int64 when F > 23: 32 terms below 2**(F+2) would overflow int32)
    big = frac > 23
    if special or big:
        for kk in range(nk):  # 0 * Inf must give NaN, so zero a is not skipped
            a = arow_v[kk]
            for j in range(nj):
                p = a * bblk_v[kk, j]
                finite = abs(p) < inf
                ssum[j] += np.float32(0.0) if finite else p
                if big:
                    isum64[j] += np.int64(p * scale[j] if finite else np.float32(0.0))
                else:
                    isum[j] += np.int32(p * scale[j] if finite else np.float32(0.0))
    else:
        for kk in range(0, nk, 4):
            a0, a1, a2, a3 = arow_v[kk], arow_v[kk + 1], arow_v[kk + 2], arow_v[kk + 3]
            for j in range(nj):
                sc = scale[j]
                t0 = np.int32(a0 * bblk_v[kk, j] * sc) + np.int32(a1 * bblk_v[kk + 1, j] * sc)
                t1 = np.int32(a2 * bblk_v[kk + 2, j] * sc) + np.int32(a3 * bblk_v[kk + 3, j] * sc)
                isum[j] += t0 + t1
    # normalize: keep F+1 significant bits of the integer sum (mask its mantissa), scale back
    wide = frac > 13  # the sum may exceed float32's 24 exact bits: go through float64
    for j in range(nj):
        c = part[j]
        if wide:
            s64 = np.float64(isum64[j] if big else isum[j])
            kept64 = np.uint64(s64.view(np.uint64) & mask64).view(np.float64)
            t = np.float32(kept64 * np.float64(inv[j]))
        else:
            s32 = np.float32(isum[j])
            t = np.uint32(s32.view(np.uint32) & mask).view(np.float32) * inv[j]
        # no nonzero product: C passes through truncated; a zero result is +0 (C = -0
        # included, as the H100 does), hence the + 0
        tc = np.uint32(pbits[j] & mask).view(np.float32) + np.float32(0.0)
        t = t if m[j] != 0 else tc
        c_finite = abs(c) < inf
        t = t if c_finite else c  # Inf or NaN C wins over finite products
        sp = ssum[j]  # Inf/NaN products: their float32 sum, Inf or NaN
        t = t if sp == 0 else (sp if c_finite else sp + c)
        part[j] = t


@nb.njit(cache=True, inline="always", error_model="numpy")
def _sequential_step(arow_v, bblk_v, nk, nj, part, part64, wide):
    """Plain IEEE accumulation, one product at a time in K order: float32 or float64.

    Four products per pass over the columns, added in order, so the running sum is
    loaded and stored once per four (same roundings, same order).
    """
    n4 = nk // 4 * 4
    for kk in range(0, n4, 4):
        a0, a1, a2, a3 = arow_v[kk], arow_v[kk + 1], arow_v[kk + 2], arow_v[kk + 3]
        if wide:
            for j in range(nj):
                x = part64[j] + np.float64(a0) * np.float64(bblk_v[kk, j])
                x = x + np.float64(a1) * np.float64(bblk_v[kk + 1, j])
                x = x + np.float64(a2) * np.float64(bblk_v[kk + 2, j])
                part64[j] = x + np.float64(a3) * np.float64(bblk_v[kk + 3, j])
        else:
            for j in range(nj):
                y = part[j] + a0 * bblk_v[kk, j]
                y = y + a1 * bblk_v[kk + 1, j]
                y = y + a2 * bblk_v[kk + 2, j]
                part[j] = y + a3 * bblk_v[kk + 3, j]
    for kk in range(n4, nk):
        a = arow_v[kk]
        if wide:
            for j in range(nj):
                part64[j] = part64[j] + np.float64(a) * np.float64(bblk_v[kk, j])
        else:
            for j in range(nj):
                part[j] = part[j] + a * bblk_v[kk, j]


@nb.njit(cache=True, parallel=True, error_model="numpy")
def gemm_tiles(a, b, tav, tag, tbv, tbg, c, has_c, mode, terms, frac, chunk, promoted, when,
               order, fused, sa, sb, bdiv, out):
    """Chains MMA steps along K for every output, promoting every `chunk` elements.

    mode: FUSED (the MMA step model), IDEAL (float32 one product at a time) or EXACT
    (float64, rounded to float32 at the end of each chunk).
    a (M, K) and b (K, N) are uint8 codes, decoded block by block through the tables
    tav/tbv (float32 values) and tag/tbg (2**exponent, 0 for zero and non-finite codes).
    chunk: K elements per partial sum; promoted: add each partial into an FP32
    accumulator (False: the chain runs through, chunk >= K).
    when, order, fused, sa, sb, bdiv: the epilogue as op-codes (`fp8sim.engine.epilogue.
    kernel_args`): NONE, or the scales applied at each PROMOTION or at the END; sa (1 or M,
    1 or G) and sb (1 or G, columns) are read at [i or 0, g or 0] and [g or 0, j // bdiv].
    """
    M, K = a.shape
    N = b.shape[1]
    rows_a, groups_a, groups_b = sa.shape[0] > 1, sa.shape[1] > 1, sb.shape[0] > 1
    ni = (M + IB - 1) // IB
    nj = (N + JB - 1) // JB
    kept = min(frac, 23)  # fractional bits that reach the float32 result
    mask = np.uint32((0xFFFFFFFF << (23 - kept)) & 0xFFFFFFFF)
    mask64 = np.uint64(((1 << 64) - 1) ^ ((1 << (52 - kept)) - 1))
    tae, tbe = _exponents(tag), _exponents(tbg)
    for t in nb.prange(ni * nj):
        i0 = (t // nj) * IB
        j0 = (t % nj) * JB
        mi = min(IB, M - i0)
        mj = min(JB, N - j0)
        part = np.zeros((IB, JB), dtype=np.float32)
        part64 = np.zeros((IB, JB), dtype=np.float64)
        acc = np.zeros((IB, JB), dtype=np.float32)
        tpad = (terms + 3) // 4 * 4
        ablk_v = np.zeros((IB, tpad), dtype=np.float32)
        ablk_e = np.full((IB, tpad), NO_EXP, dtype=np.int8)
        bblk_v = np.zeros((tpad, JB), dtype=np.float32)
        bblk_e = np.full((tpad, JB), NO_EXP, dtype=np.int8)
        m = np.empty(JB, dtype=np.float32)
        me = np.empty(JB, dtype=np.int8)
        scale = np.empty(JB, dtype=np.float32)
        inv = np.empty(JB, dtype=np.float32)
        isum = np.empty(JB, dtype=np.int32)
        isum64 = np.empty(JB, dtype=np.int64)
        ssum = np.empty(JB, dtype=np.float32)
        sbv = np.empty(JB, dtype=np.float32)  # scale_b of each column in the current K group
        colidx = np.empty(JB, dtype=np.int64)
        for j in range(mj):
            colidx[j] = (j0 + j) // bdiv
        if has_c:
            for ii in range(mi):
                for j in range(mj):
                    part[ii, j] = c[i0 + ii, j0 + j]
                    part64[ii, j] = c[i0 + ii, j0 + j]
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
                        bblk_e[kk, j] = tbe[code]
                    for j in range(mj):
                        special = special or not abs(bblk_v[kk, j]) < np.float32(np.inf)
                for ii in range(mi):
                    for kk in range(nk):
                        code = a[i0 + ii, k0 + kk]
                        ablk_v[ii, kk] = tav[code]
                        ablk_e[ii, kk] = tae[code]
                        special = special or not abs(ablk_v[ii, kk]) < np.float32(np.inf)
                npad = (nk + 3) // 4 * 4  # zero rows up to a multiple of 4: no products
                for kk in range(nk, npad):
                    for j in range(JB):
                        bblk_v[kk, j] = np.float32(0.0)
                        bblk_e[kk, j] = NO_EXP
                    for ii in range(IB):
                        ablk_v[ii, kk] = np.float32(0.0)
                        ablk_e[ii, kk] = NO_EXP
                for ii in range(mi):
                    if mode == FUSED:
                        _fused_step(ablk_v[ii], ablk_e[ii], bblk_v, bblk_e, npad, mj, part[ii],
                                    me, m, scale, inv, isum, isum64, ssum, frac, mask, mask64,
                                    special)
                    else:  # padding rows excluded: -0 + 0 would be +0
                        _sequential_step(ablk_v[ii], bblk_v, nk, mj, part[ii], part64[ii],
                                         mode == EXACT)
            if mode == EXACT:
                for ii in range(mi):
                    for j in range(mj):
                        part[ii, j] = np.float32(part64[ii, j])
                        part64[ii, j] = 0.0
            if promoted:
                ga = g if groups_a else 0
                gb = g if groups_b else 0
                for j in range(mj):
                    sbv[j] = sb[gb, colidx[j]]
                for ii in range(mi):
                    _promote(acc[ii], part[ii], when, order, fused,
                             sa[i0 + ii if rows_a else 0, ga], sbv, mj)
                    for j in range(mj):
                        part[ii, j] = np.float32(0.0)
            g += 1
        res = acc if promoted else part
        if when == END:
            for j in range(mj):
                sbv[j] = sb[0, colidx[j]]
            for ii in range(mi):
                _scale_end(res[ii], sa[i0 + ii if rows_a else 0, 0], sbv, order, mj)
        for ii in range(mi):
            for j in range(mj):
                out[i0 + ii, j0 + j] = res[ii, j]
