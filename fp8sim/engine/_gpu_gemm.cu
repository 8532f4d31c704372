// fp8sim's GPU engine: the arithmetic of fp8sim/engine/_gemm_kernels.py on CUDA cores.
//
// Plain CUDA C (no FP8 or tensor-core instructions): any GPU of compute capability >= 7.0.
// Compiled by NVRTC with --fmad=false, so no multiply and add is ever contracted into
// an fma behind our back; every fma below is written out (fma_rn, __fmaf_rz).
//
// gemm_tiled<MODE, T, PROMOTED>: a 64 x 64 tile of outputs per block of 128 threads, each
// thread 8 rows x 4 columns; K goes through shared memory one MMA step (T codes) at a time,
// decoded there through 256-entry tables. MODE_FUSED is the H100 step with F <= 17
// fractional bits, computed in float32 without any integer conversion:
//   pass 1: 2**emax = max over k of 2**ea * 2**eb (powers of two, 0 for zero values);
//   with u = 2**emax * 2**-F, the magic number Mv = 1.5 * 2**23 * u puts every term in
//   the binade [2**23 u, 2**24 u) whose spacing is u, so
//       t = fma_rz(a, b, +-Mv)   (sign of a*b)   = +-Mv + trunc(a*b / u) * u   exactly,
//   and t - (+-Mv) is the term truncated toward zero to a multiple of u, the alignment
//   the hardware does. The truncated terms (C's too) are multiples of u below 2**(F+1) u,
//   so their float32 sum S is exact (33 * 2**18 < 2**24), and masking S's mantissa to F
//   bits is the result's truncation (the CPU engine's masked(float(isum)) * u, scaled).
//   When C's exponent is so large that every product truncates to zero (2**emax >=
//   2**(F+35)), or there is no nonzero product, the step passes C through truncated, as
//   the CPU engine does. Inf/NaN products only matter through their float32 sum, which
//   is computed separately for steps whose tiles hold a non-finite value.
// MODE_IDEAL and MODE_EXACT accumulate one product at a time (float32, float64).
// gemm_generic: one thread per output, the CPU engine's integer arithmetic line by line
// (any F <= 28, any step size); the reference the tiled kernel is checked against.

#define SIGN 0x80000000u
#define BM 64
#define BN 64
#define TM 8
#define TN 4
#define NTHREADS 128

typedef unsigned char u8;

enum { MODE_FUSED = 0, MODE_IDEAL = 1, MODE_EXACT = 2 };
enum { WHEN_NONE = 0, WHEN_PROMOTION = 1, WHEN_END = 2 };
enum { ORDER_PRODUCT = 0, ORDER_A_FIRST = 1, ORDER_B_FIRST = 2 };

// CuPy compiles with -ftz=true (appended after any option of ours), so the compiler's
// float32 arithmetic flushes subnormal inputs and results to zero. Every operation whose
// operands or result can be subnormal (C passing through, scaled partials, float64 ->
// float32) is therefore written in PTX without .ftz; the others work on normal values
// only (FP8 values and their products, multiples of 2**(emax-F) >= 2**-45, Inf/NaN),
// where flushing changes nothing. (fma_rz(c, 1, +-Mv) with a subnormal C rounds to +-Mv
// whether C is flushed or not.)
__device__ __forceinline__ float add_rn(float a, float b) {
    float d;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
    return d;
}
__device__ __forceinline__ float mul_rn(float a, float b) {
    float d;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
    return d;
}
__device__ __forceinline__ float fma_rn(float a, float b, float c) {
    float d;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(d) : "f"(a), "f"(b), "f"(c));
    return d;
}
__device__ __forceinline__ double to_f64(float a) {
    double d;
    asm("cvt.f64.f32 %0, %1;" : "=d"(d) : "f"(a));
    return d;
}
__device__ __forceinline__ float to_f32(double a) {
    float d;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(d) : "d"(a));
    return d;
}
// x + 0 for a finite x, in bits: -0 becomes +0, everything else (subnormals too) stays
__device__ __forceinline__ float plus_zero(unsigned bits) {
    return __uint_as_float((bits & 0x7FFFFFFFu) ? bits : 0u);
}

// acc + part at a promotion, with the epilogue's scales when it applies them there
__device__ __forceinline__ float promote_one(float acc, float part, int when, int order,
                                             int fused, float sav, float sbv) {
    if (when != WHEN_PROMOTION) return add_rn(acc, part);
    float left, right;
    if (order == ORDER_PRODUCT) { left = part; right = mul_rn(sav, sbv); }
    else if (order == ORDER_A_FIRST) { left = mul_rn(part, sav); right = sbv; }
    else { left = mul_rn(part, sbv); right = sav; }
    if (fused) return fma_rn(left, right, acc);
    return add_rn(acc, mul_rn(left, right));
}

// the epilogue applied once at the end: fl(left * right)
__device__ __forceinline__ float scale_end(float res, int order, float sav, float sbv) {
    if (order == ORDER_PRODUCT) return mul_rn(res, mul_rn(sav, sbv));
    if (order == ORDER_A_FIRST) return mul_rn(mul_rn(res, sav), sbv);
    return mul_rn(mul_rn(res, sbv), sav);
}

__device__ __forceinline__ float scale_a_at(const float* sa, int sa_rows, int sa_cols, int i,
                                            int g) {
    return sa[(size_t)(sa_rows > 1 ? i : 0) * sa_cols + (sa_cols > 1 ? g : 0)];
}

__device__ __forceinline__ float scale_b_at(const float* sb, int sb_rows, int sb_cols, int g,
                                            int j, int bdiv) {
    return sb[(size_t)(sb_rows > 1 ? g : 0) * sb_cols + j / bdiv];
}

__device__ __forceinline__ bool is_finite(float x) { return fabsf(x) < __int_as_float(0x7f800000); }

// Pass 1 runs on pairs of bfloat16 powers of two where the chip has bf16x2 arithmetic
// (sm_80+): 2**ea * 2**eb is exact in bfloat16 (8 exponent bits, like float32), and so
// is the max. The pow2 tables hold no NaN; 0 * x + (-0) is +0, so zero values stay out.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define PASS1_BF16 1
__device__ __forceinline__ unsigned bf2_fma(unsigned a, unsigned b, unsigned c) {
    unsigned d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
__device__ __forceinline__ unsigned bf2_max(unsigned a, unsigned b) {
    unsigned d;
    asm("max.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
#else
#define PASS1_BF16 0
#endif

#if PASS1_BF16
// Decodes 16 codes (one 16-byte load) into 16 consecutive entries of a tile's rows:
// values, their sign bits and bf16 2**e (twice per word for A, once per half-word for B).
template <bool IS_A>
__device__ __forceinline__ void decode16(uint4 w, const float* tv, const float* tg, float* v_out,
                                         unsigned* s_out, void* g_out, int& special) {
    const unsigned words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float v[4];
        unsigned sg[4], g[4];
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const unsigned code = (words[q] >> (8 * b)) & 0xFFu;
            v[b] = tv[code];
            sg[b] = __float_as_uint(v[b]) & SIGN;
            g[b] = __float_as_uint(tg[code]) >> 16;
            special |= !is_finite(v[b]);
        }
        *reinterpret_cast<float4*>(v_out + 4 * q) = make_float4(v[0], v[1], v[2], v[3]);
        *reinterpret_cast<uint4*>(s_out + 4 * q) = make_uint4(sg[0], sg[1], sg[2], sg[3]);
        if (IS_A)
            *reinterpret_cast<uint4*>(static_cast<unsigned*>(g_out) + 4 * q) =
                make_uint4(g[0] * 0x10001u, g[1] * 0x10001u, g[2] * 0x10001u, g[3] * 0x10001u);
        else
            *reinterpret_cast<uint2*>(static_cast<unsigned short*>(g_out) + 4 * q) =
                make_uint2(g[0] | (g[1] << 16), g[2] | (g[3] << 16));
    }
}
#endif

template <int MODE, int T, bool PROMOTED>
__global__ void __launch_bounds__(NTHREADS, 3)
gemm_tiled(const u8* __restrict__ At,      // (K, M) codes: A transposed
           const u8* __restrict__ B,       // (K, N) codes
           const float* __restrict__ tables,  // a values, a 2**e, b values, b 2**e (4 x 256)
           const float* __restrict__ C, int has_c,
           int M, int N, int K, int frac, int chunk,
           int when, int order, int fused,
           const float* __restrict__ sa, int sa_rows, int sa_cols,
           const float* __restrict__ sb, int sb_rows, int sb_cols, int bdiv,
           float* __restrict__ out,
           float* __restrict__ parts, int g_per_z) {
    // g_per_z > 0 (PROMOTED only): block z sums promotion intervals [z, z + 1) * g_per_z
    // and stores each interval's sum in parts (G, M, N); promote_parts adds them in order
    __shared__ float tab[4][256];
    __shared__ __align__(16) float As_v[T][BM];
    __shared__ __align__(16) float Bs_v[T][BN];
    __shared__ __align__(16) unsigned Bs_s[T][BN];  // sign bits of B's values (see pass 2)
#if PASS1_BF16
    __shared__ __align__(16) unsigned As_s[T][BM];        // sign bits of A's values
    __shared__ __align__(16) unsigned As_g[T][BM];        // bf16 2**e, twice in one word
    __shared__ __align__(16) unsigned short Bs_g[T][BN];  // bf16 2**e
#else
    __shared__ __align__(16) float As_g[T][BM];
    __shared__ __align__(16) float Bs_g[T][BN];
#endif

    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    const int r0 = ty * TM, q0 = tx * TN;  // this thread's rows and columns in the tile

    for (int e = tid; e < 4 * 256; e += NTHREADS) tab[e / 256][e % 256] = tables[e];

    const int kept = frac < 23 ? frac : 23;
    const unsigned mask = 0xFFFFFFFFu << (23 - kept);
    const float magic = ldexpf(1.5f, 23 - frac);       // Mv = 2**emax * magic
    const float big = ldexpf(1.0f, frac + 35);          // C this large: products vanish
    const float dummy_m = 1.0f;

    float part[TM][TN], acc[TM][TN];
    double part64[TM][TN];  // MODE_EXACT only (dead code elsewhere)
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) {
            int gi = i0 + r0 + i, gj = j0 + q0 + j;
            float c = (has_c && blockIdx.z == 0 && gi < M && gj < N) ? C[(size_t)gi * N + gj]
                                                                       : 0.0f;
            part[i][j] = c;
            acc[i][j] = 0.0f;
            if (MODE == MODE_EXACT) part64[i][j] = to_f64(c);
        }
    __syncthreads();

    const bool split = PROMOTED && g_per_z > 0;
    int g = split ? blockIdx.z * g_per_z : 0;
    const int k_end = split ? min(K, (g + g_per_z) * chunk) : K;
    for (int c0 = g * chunk; c0 < k_end; c0 += chunk) {
        const int c1 = min(c0 + chunk, K);
        for (int k0 = c0; k0 < c1; k0 += T) {
            const int nk = min(k0 + T, c1) - k0;
            // ---- load and decode one step of A (T x BM) and B (T x BN), zero-padded
            int special = 0;
#if PASS1_BF16
            // whole tiles with 16-byte aligned rows: one 16-byte load of A and of B a thread
            const bool vec = T * BM == 16 * NTHREADS && nk == T && i0 + BM <= M && j0 + BN <= N
                             && (M % 16) == 0 && (N % 16) == 0
                             && ((reinterpret_cast<size_t>(At) | reinterpret_cast<size_t>(B)) & 15) == 0;
            if (vec) {
                const int kk = tid >> 2, c16 = (tid & 3) * 16;
                const uint4 wa = *reinterpret_cast<const uint4*>(At + (size_t)(k0 + kk) * M + i0 + c16);
                const uint4 wb = *reinterpret_cast<const uint4*>(B + (size_t)(k0 + kk) * N + j0 + c16);
                decode16<true>(wa, tab[0], tab[1], &As_v[kk][c16], &As_s[kk][c16], &As_g[kk][c16],
                               special);
                decode16<false>(wb, tab[2], tab[3], &Bs_v[kk][c16], &Bs_s[kk][c16], &Bs_g[kk][c16],
                                special);
            } else
#endif
            {
#pragma unroll 4
            for (int e = tid; e < T * BM; e += NTHREADS) {
                const int kk = e / BM, col = e % BM;
                const int gi = i0 + col;
                const bool in = kk < nk && gi < M;
                const int code = in ? At[(size_t)(k0 + kk) * M + gi] : 0;
                const float v = in ? tab[0][code] : 0.0f;
                As_v[kk][col] = v;
                const float ga = in ? tab[1][code] : 0.0f;
#if PASS1_BF16
                As_s[kk][col] = __float_as_uint(v) & SIGN;
                As_g[kk][col] = (__float_as_uint(ga) >> 16) * 0x10001u;
#else
                As_g[kk][col] = ga;
#endif
                special |= !is_finite(v);
            }
#pragma unroll 4
            for (int e = tid; e < T * BN; e += NTHREADS) {
                const int kk = e / BN, col = e % BN;
                const int gj = j0 + col;
                const bool in = kk < nk && gj < N;
                const int code = in ? B[(size_t)(k0 + kk) * N + gj] : 0;
                const float v = in ? tab[2][code] : 0.0f;
                Bs_v[kk][col] = v;
                Bs_s[kk][col] = __float_as_uint(v) & SIGN;
                const float gb = in ? tab[3][code] : 0.0f;
#if PASS1_BF16
                Bs_g[kk][col] = (unsigned short)(__float_as_uint(gb) >> 16);
#else
                Bs_g[kk][col] = gb;
#endif
                special |= !is_finite(v);
            }
            }
            special = __syncthreads_or(special);

            if (MODE == MODE_FUSED) {
                // ---- pass 1: 2**emax of the nonzero products of each output
                float mb[TM][TN];
#if PASS1_BF16
                unsigned mb2[TM][TN / 2];
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN / 2; j++) mb2[i][j] = 0u;
#pragma unroll 2
                for (int kk = 0; kk < T; kk++) {
                    const uint4 ga0 = *reinterpret_cast<const uint4*>(&As_g[kk][r0]);
                    const uint4 ga1 = *reinterpret_cast<const uint4*>(&As_g[kk][r0 + 4]);
                    const uint2 gb = *reinterpret_cast<const uint2*>(&Bs_g[kk][q0]);
                    const unsigned ga[TM] = {ga0.x, ga0.y, ga0.z, ga0.w, ga1.x, ga1.y, ga1.z, ga1.w};
                    const unsigned gbv[TN / 2] = {gb.x, gb.y};
#pragma unroll
                    for (int i = 0; i < TM; i++)
#pragma unroll
                        for (int j = 0; j < TN / 2; j++)
                            mb2[i][j] = bf2_max(mb2[i][j], bf2_fma(ga[i], gbv[j], 0x80008000u));
                }
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN / 2; j++) {
                        mb[i][2 * j] = __uint_as_float(mb2[i][j] << 16);
                        mb[i][2 * j + 1] = __uint_as_float(mb2[i][j] & 0xFFFF0000u);
                    }
#else
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN; j++) mb[i][j] = 0.0f;
#pragma unroll 2
                for (int kk = 0; kk < T; kk++) {
                    const float4 ga0 = *reinterpret_cast<const float4*>(&As_g[kk][r0]);
                    const float4 ga1 = *reinterpret_cast<const float4*>(&As_g[kk][r0 + 4]);
                    const float4 gb = *reinterpret_cast<const float4*>(&Bs_g[kk][q0]);
                    const float ga[TM] = {ga0.x, ga0.y, ga0.z, ga0.w, ga1.x, ga1.y, ga1.z, ga1.w};
                    const float gbv[TN] = {gb.x, gb.y, gb.z, gb.w};
#pragma unroll
                    for (int i = 0; i < TM; i++)
#pragma unroll
                        for (int j = 0; j < TN; j++)
                            mb[i][j] = fmaxf(mb[i][j], __fmul_rn(ga[i], gbv[j]));
                }
#endif
                // ---- C's term and each output's magic number (0: C passes through)
                float S[TM][TN];
                unsigned Mb[TM][TN];
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN; j++) {
                        const float c = part[i][j];
                        const unsigned cb = __float_as_uint(c);
                        const float cexp = __uint_as_float(cb & 0x7F800000u);
                        const float m = mb[i][j];
                        const float e = fmaxf(cexp, m);
                        const bool fast = m != 0.0f && e < big;  // C Inf/NaN: e = Inf
                        const float mv = __fmul_rn(fast ? e : dummy_m, magic);
                        const float msc = __uint_as_float(__float_as_uint(mv) | (cb & SIGN));
                        S[i][j] = __fsub_rn(__fadd_rz(c, msc), msc);
                        Mb[i][j] = fast ? __float_as_uint(mv) : 0u;
                    }
                // ---- pass 2: the products truncated to multiples of u, summed exactly
#pragma unroll 2
                for (int kk = 0; kk < T; kk++) {
                    const float4 a0 = *reinterpret_cast<const float4*>(&As_v[kk][r0]);
                    const float4 a1 = *reinterpret_cast<const float4*>(&As_v[kk][r0 + 4]);
                    const float4 b4 = *reinterpret_cast<const float4*>(&Bs_v[kk][q0]);
                    const float av[TM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                    const float bv[TN] = {b4.x, b4.y, b4.z, b4.w};
                    // the signs come from shared memory, so the compiler cannot fold the
                    // sign of a*b back into two operations a product: one LOP3 forms +-Mv
                    const uint4 s4 = *reinterpret_cast<const uint4*>(&Bs_s[kk][q0]);
                    const unsigned sbv[TN] = {s4.x, s4.y, s4.z, s4.w};
#if PASS1_BF16
                    const uint4 sa0 = *reinterpret_cast<const uint4*>(&As_s[kk][r0]);
                    const uint4 sa1 = *reinterpret_cast<const uint4*>(&As_s[kk][r0 + 4]);
                    const unsigned sav[TM] = {sa0.x, sa0.y, sa0.z, sa0.w,
                                              sa1.x, sa1.y, sa1.z, sa1.w};
#else  // (shared memory is too small for A's signs beside float 2**e tables)
                    unsigned sav[TM];
#pragma unroll
                    for (int i = 0; i < TM; i++) sav[i] = __float_as_uint(av[i]) & SIGN;
#endif
#pragma unroll
                    for (int i = 0; i < TM; i++)
#pragma unroll
                        for (int j = 0; j < TN; j++) {
                            const float ms = __uint_as_float((sav[i] ^ sbv[j]) | Mb[i][j]);
                            const float t = __fmaf_rz(av[i], bv[j], ms);
                            S[i][j] = __fadd_rn(S[i][j], __fsub_rn(t, ms));
                        }
                }
                // ---- normalize: keep F bits below the leading one; C and Inf/NaN cases
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN; j++) {
                        const float c = part[i][j];
                        const float tf = __uint_as_float(__float_as_uint(S[i][j]) & mask);
                        const float tc = plus_zero(__float_as_uint(c) & mask);
                        float t = Mb[i][j] != 0u ? tf : tc;
                        const bool c_finite = is_finite(c);
                        t = c_finite ? t : c;
                        if (special) {  // the float32 sum of the Inf/NaN products
                            float sp = 0.0f;
#pragma unroll 1
                            for (int kk = 0; kk < T; kk++) {
                                const float p = __fmul_rn(As_v[kk][r0 + i], Bs_v[kk][q0 + j]);
                                sp = __fadd_rn(sp, is_finite(p) ? 0.0f : p);
                            }
                            t = sp == 0.0f ? t : (c_finite ? sp : __fadd_rn(sp, c));
                        }
                        part[i][j] = t;
                    }
            } else {
                // ---- one product at a time, in K order (padding excluded: -0 + 0 is +0)
                for (int kk = 0; kk < nk; kk++) {
                    const float4 a0 = *reinterpret_cast<const float4*>(&As_v[kk][r0]);
                    const float4 a1 = *reinterpret_cast<const float4*>(&As_v[kk][r0 + 4]);
                    const float4 b4 = *reinterpret_cast<const float4*>(&Bs_v[kk][q0]);
                    const float av[TM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                    const float bv[TN] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
                    for (int i = 0; i < TM; i++)
#pragma unroll
                        for (int j = 0; j < TN; j++) {
                            if (MODE == MODE_EXACT)  // products are exact: one rounding
                                part64[i][j] = __fma_rn((double)av[i], (double)bv[j],
                                                        part64[i][j]);
                            else  // (FP8 values are normal floats: no flush in the casts)
                                part[i][j] = fma_rn(av[i], bv[j], part[i][j]);
                        }
                }
            }
            __syncthreads();
        }
        if (MODE == MODE_EXACT) {
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) {
                    part[i][j] = to_f32(part64[i][j]);
                    part64[i][j] = 0.0;
                }
        }
        if (split) {
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) {
                    const int gi = i0 + r0 + i, gj = j0 + q0 + j;
                    if (gi < M && gj < N) parts[((size_t)g * M + gi) * N + gj] = part[i][j];
                    part[i][j] = 0.0f;
                }
        } else if (PROMOTED) {
#pragma unroll
            for (int i = 0; i < TM; i++) {
                const int gi = min(i0 + r0 + i, M - 1);
                const float sav = when == WHEN_PROMOTION ? scale_a_at(sa, sa_rows, sa_cols, gi, g)
                                                         : 0.0f;
#pragma unroll
                for (int j = 0; j < TN; j++) {
                    const int gj = min(j0 + q0 + j, N - 1);
                    const float sbv = when == WHEN_PROMOTION
                                          ? scale_b_at(sb, sb_rows, sb_cols, g, gj, bdiv) : 0.0f;
                    acc[i][j] = promote_one(acc[i][j], part[i][j], when, order, fused, sav, sbv);
                    part[i][j] = 0.0f;
                }
            }
        }
        g++;
    }
    if (split) return;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int gi = i0 + r0 + i;
        if (gi >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int gj = j0 + q0 + j;
            if (gj >= N) continue;
            float res = PROMOTED ? acc[i][j] : part[i][j];
            if (when == WHEN_END)
                res = scale_end(res, order, scale_a_at(sa, sa_rows, sa_cols, gi, 0),
                                scale_b_at(sb, sb_rows, sb_cols, 0, gj, bdiv));
            out[(size_t)gi * N + gj] = res;
        }
    }
}

// One thread per output: the promotions of gemm_tiled's interval sums `parts` (G, M, N),
// in K order, then the end scale: the same operations as gemm_tiled's own promotions
__global__ void promote_parts(const float* __restrict__ parts, int G, int M, int N,
                              int when, int order, int fused,
                              const float* __restrict__ sa, int sa_rows, int sa_cols,
                              const float* __restrict__ sb, int sb_rows, int sb_cols, int bdiv,
                              float* __restrict__ out) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)M * N) return;
    const int i = (int)(e / N), j = (int)(e % N);
    float acc = 0.0f;
    for (int g = 0; g < G; g++) {
        const float sav = when == WHEN_PROMOTION ? scale_a_at(sa, sa_rows, sa_cols, i, g) : 0.0f;
        const float sbv = when == WHEN_PROMOTION ? scale_b_at(sb, sb_rows, sb_cols, g, j, bdiv)
                                                 : 0.0f;
        acc = promote_one(acc, parts[(size_t)g * M * N + e], when, order, fused, sav, sbv);
    }
    if (when == WHEN_END)
        acc = scale_end(acc, order, scale_a_at(sa, sa_rows, sa_cols, i, 0),
                        scale_b_at(sb, sb_rows, sb_cols, 0, j, bdiv));
    out[e] = acc;
}

// One thread per output: the CPU engine's FUSED arithmetic (integer sums), any step size
// and F <= 28. Slow (codes read from global memory); the reference for the tiled kernel
// and the path for steps it does not cover.
__global__ void gemm_generic(const u8* __restrict__ A,   // (M, K) codes
                             const u8* __restrict__ B,   // (K, N) codes
                             const float* __restrict__ tables,
                             const float* __restrict__ C, int has_c,
                             int M, int N, int K, int terms, int frac, int chunk, int promoted,
                             int when, int order, int fused,
                             const float* __restrict__ sa, int sa_rows, int sa_cols,
                             const float* __restrict__ sb, int sb_rows, int sb_cols, int bdiv,
                             float* __restrict__ out) {
    __shared__ float tab[4][256];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    for (int e = tid; e < 4 * 256; e += blockDim.x * blockDim.y) tab[e / 256][e % 256] = tables[e];
    __syncthreads();
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M || j >= N) return;

    const float inf = __int_as_float(0x7f800000);
    const int kept = frac < 23 ? frac : 23;
    const unsigned mask = 0xFFFFFFFFu << (23 - kept);
    const unsigned long long mask64 = ~((1ull << (52 - kept)) - 1ull);
    const float two_f = ldexpf(1.0f, frac), inv_two_f = ldexpf(1.0f, -frac);
    const bool big = frac > 23, wide = frac > 13;
    const u8* arow = A + (size_t)i * K;

    float part = has_c ? C[(size_t)i * N + j] : 0.0f;
    float acc = 0.0f;
    int g = 0;
    for (int c0 = 0; c0 < K; c0 += chunk) {
        const int c1 = min(c0 + chunk, K);
        for (int k0 = c0; k0 < c1; k0 += terms) {
            const int nk = min(k0 + terms, c1) - k0;
            float m = 0.0f;
            for (int kk = 0; kk < nk; kk++) {
                const float p = __fmul_rn(tab[1][arow[k0 + kk]], tab[3][B[(size_t)(k0 + kk) * N + j]]);
                m = p > m ? p : m;
            }
            const unsigned pbits = __float_as_uint(part);
            const float cexp = __uint_as_float(pbits & 0x7F800000u);
            const bool usable = m != 0.0f && cexp != inf;
            float e = cexp > m ? cexp : m;
            e = usable ? e : 1.0f;
            const float scale = __fdiv_rn(two_f, e);
            const float inv = __fmul_rn(e, inv_two_f);
            const float cs = __fmul_rn(part, scale);
            int isum = usable ? (int)cs : 0;
            long long isum64 = usable ? (long long)cs : 0;
            float ssum = 0.0f;
            for (int kk = 0; kk < nk; kk++) {
                const float p = __fmul_rn(tab[0][arow[k0 + kk]], tab[2][B[(size_t)(k0 + kk) * N + j]]);
                const bool finite = fabsf(p) < inf;
                ssum = __fadd_rn(ssum, finite ? 0.0f : p);
                const float x = finite ? __fmul_rn(p, scale) : 0.0f;
                if (big) isum64 += (long long)x;
                else isum += (int)x;
            }
            float t;
            if (wide) {
                const double s64 = big ? (double)isum64 : (double)isum;
                const double kept64 = __longlong_as_double(__double_as_longlong(s64) & mask64);
                t = __double2float_rn(__dmul_rn(kept64, (double)inv));
            } else {
                const float s32 = __int2float_rn(isum);
                t = __fmul_rn(__uint_as_float(__float_as_uint(s32) & mask), inv);
            }
            const float tc = plus_zero(pbits & mask);
            t = m != 0.0f ? t : tc;
            const bool c_finite = fabsf(part) < inf;
            t = c_finite ? t : part;
            t = ssum == 0.0f ? t : (c_finite ? ssum : __fadd_rn(ssum, part));
            part = t;
        }
        if (promoted) {
            const float sav = when == WHEN_PROMOTION ? scale_a_at(sa, sa_rows, sa_cols, i, g) : 0.0f;
            const float sbv = when == WHEN_PROMOTION ? scale_b_at(sb, sb_rows, sb_cols, g, j, bdiv)
                                                     : 0.0f;
            acc = promote_one(acc, part, when, order, fused, sav, sbv);
            part = 0.0f;
        }
        g++;
    }
    float res = promoted ? acc : part;
    if (when == WHEN_END)
        res = scale_end(res, order, scale_a_at(sa, sa_rows, sa_cols, i, 0),
                        scale_b_at(sb, sb_rows, sb_cols, 0, j, bdiv));
    out[(size_t)i * N + j] = res;
}
