/*
 * Fused CPU kernels for banks of linear splines (lipspline.splines) and for the
 * served map's float64 evaluation with its rounding bound
 * (lipspline.certificates.served_map).
 *
 * Why native code: composing the evaluation from PyTorch ops makes ~10 passes
 * over the activations (position, floor, clamp, index, two gathers, ...) and
 * the coefficient gradient needs a scatter; that costs several times a ReLU.
 * Here each element is read once, its cell found, two table entries read, and
 * the output written: the cost per element does not depend on the number of
 * knots.
 *
 * ---- training kernels (float32 and float64) -----------------------------------
 *
 * Layout: x is contiguous (outer, channels, inner); spline c acts on channel c.
 * Dense layers have inner = 1, conv layers inner = H*W. The grid is uniform
 * (tau_k = grid_min + k / inv_delta), so the cell is floor((x - grid_min) *
 * inv_delta), clamped to the first/last cell: no search.
 *
 * Each call first builds a per-call "rise" table, rise[k] = c[k+1] - c[k], laid
 * out like the coefficients (channels x knots, the last entry of a row unused),
 * so that the value c[k] + rise[k] * frac and the input gradient
 * g * rise[k] * inv_delta both read the two tables at one int32 index: the
 * dense loops vectorise with AVX2 gathers (8 floats / 4 doubles at a time).
 * The arithmetic is that of the PyTorch reference path (splines._torch_cells):
 * the same c[k] + (c[k+1] - c[k]) * frac, in the same order.
 *
 * Float32 dense layers go through register tiles (rows x channels transposed so
 * that a vector holds one channel, whose knot table is then read by permutes, not
 * gathers): 16 x 16 with AVX-512F up to 32 knots, 8 x 8 with AVX2 up to 24; see
 * tile_width. set_tile_cap lets tests and benchmarks run the narrower ones too.
 *
 * The spline-norm penalty (norm_terms) reads each column of the functionals
 * matrix as at most three taps, so |c @ M| and its gradient cost O(N K).
 *
 * The vectorised loops live in worker functions compiled twice (target_clones:
 * AVX2 and baseline; the loader picks one), called from the OpenMP regions: an
 * OpenMP-outlined loop body is NOT cloned and would run baseline SSE2 code.
 *
 * Coefficient gradient: a per-row-block partial sum, then a reduction, no
 * atomics. The rows are cut into a number of blocks that depends only on the
 * problem size (one per GRAD_BLOCK_ELEMS elements, at most GRAD_CHUNKS), never
 * on the thread count; block 0 accumulates straight into grad_coeffs, block
 * j > 0 into its own scratch table, and the tables are added in block order. So
 * a CPU run is bit-for-bit repeatable whatever the number of threads. Within a
 * dense row every channel owns its own K accumulators, so the scatter has no
 * conflicts inside a row; the row's cells and fractions are computed by the
 * vectorised loop into a small per-block scratch, then added by a scalar loop.
 *
 * Threads: the caller passes torch.get_num_threads(); the kernels never use
 * more (a "1 thread" benchmark really runs on one thread).
 *
 * ---- served-map kernels (float64) ---------------------------------------------
 *
 * served_plan() freezes one layer's static description (activation kind and
 * tables, the affine layer's ||W|| bound, gamma factors) in a capsule, built
 * once per loaded model. served_step() then makes ONE pass over the layer's
 * affine output h (computed by torch.addmm, like a float64 forward): it applies
 * the activation, and per row accumulates what the rounding recursion needs
 * (the sum of squares and largest magnitude of the output, and of the spline's
 * evaluation-error terms), and advances the per-row error bound. The formulas are
 * those of served_map.py (its module docstring proves them); only the l2 norm
 * takes a shortcut documented at row_norm below.
 *
 * The spline's cell is the exact one (t_{j-1} <= h < t_j, comparisons with the
 * float64 knots, which linspace makes only nearly uniform): a guess from the
 * position p = (h - t0) * inv is provably right when p is at least eps away
 * from every integer (eps is chosen at load time from the knots' measured
 * distance to a uniform grid, see served_map._Activation); the rare other
 * elements (on or within eps of a knot) are re-done by an exact search.
 *
 * Pointers arrive as integers from tensor.data_ptr() (the training kernels) and
 * ndarray.ctypes.data (the served plan's tables, once per model); the Python side
 * checks dtype, device, contiguity and keeps the tables alive. The served map's
 * per-call arrays arrive as buffer objects instead (short_buffer below).
 *
 * Floating-point contraction is off (setup.py: -ffp-contract=off): every
 * expression rounds exactly as written, like the reference paths.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csrc/kernel_api.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

#define GRAD_CHUNKS 16
#define GRAD_BLOCK_ELEMS 32768
#define PARALLEL_MIN_ELEMS 32768

/* One build runs everywhere; the loader picks the AVX2 clone (vector gathers)
 * on CPUs that have it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define TARGETS
#endif

#define RESTRICT __restrict__

/* Per-thread scratch that only grows. The kernels run once per layer per training step; a malloc/free
 * of tens of KB around every call is work for nothing, and it moves glibc's heap top, which can make
 * glibc trim the heap and the step's next fresh tensors page-fault in again. The sizes are
 * O(channels x knots), so keeping the largest one per thread costs little. */
enum { WS_RISE, WS_TABLE, WS_SCRATCH, WS_PAIRS, WS_IDX, WS_RIGHT, WS_LOCAL, WS_NORM, WS_SLOTS };
static __thread struct { void *p; size_t n; } ws[WS_SLOTS];

static void *workspace(int slot, size_t bytes, int zero) {
    if (bytes == 0) bytes = 1;
    if (ws[slot].n < bytes) {
        free(ws[slot].p);
        ws[slot].p = malloc(bytes);
        ws[slot].n = ws[slot].p ? bytes : 0;
        if (!ws[slot].p) return NULL;
    }
    if (zero) memset(ws[slot].p, 0, bytes);
    return ws[slot].p;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
/* Where part `part` of `parts` begins when `total` rows are cut into nearly equal ranges: the one rule
 * every parallel loop uses, and needs_rise repeats, so a row range is the same wherever it is computed. */
static int64_t split_at(int64_t total, int64_t part, int64_t parts) { return total * part / parts; }

/* Number of row blocks of the coefficient gradient: a function of the problem only. */
static int64_t grad_blocks(int64_t outer, int64_t elems) {
    int64_t blocks = elems / GRAD_BLOCK_ELEMS;
    blocks = max64(1, min64(blocks, GRAD_CHUNKS));
    return max64(1, min64(blocks, outer));
}

/* The cell of x: clamped left-knot index k in [0, K-2] and the (unclamped) position p - k.
 * NaN lands in cell 0 and propagates through the arithmetic. */
#define LOCATE(T, xv)                                                                    \
    T p = ((xv) - grid_min) * inv_delta;                                                 \
    T q = p >= (T)0 ? p : (T)0;                                                          \
    q = q <= last_cell ? q : last_cell;                                                  \
    int32_t k = (int32_t)q; /* truncation is floor here: q >= 0 */                      \
    T frac = p - (T)k;


/* ---- AVX2 tiles for float32 dense layers with at most 24 knots ---------------------------------
 * An 8 x 8 tile (8 rows, 8 channels) is transposed in registers so that each vector holds 8 rows of
 * ONE channel; that channel's knot values and rises (at most 24 floats, three registers) are then
 * looked up with vpermps and two blends instead of gathers (slow, and GCC does not emit them), and
 * the results are transposed back. Same arithmetic as the scalar loop, element by element:
 * p = (x - grid_min) * inv_delta, q = min(max(p, 0), K - 2) (NaN -> 0), k = trunc(q),
 * out = c[k] + rise[k] * (p - k); grad_x = g * rise[k] * inv_delta; right = g * (p - k). */
#ifdef HAVE_AVX2_PATH
#define TILE_KNOTS 24

__attribute__((target("avx2"))) static inline void transpose8(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

__attribute__((target("avx2"))) static inline __m256 lookup24(const float *t, __m256i k, __m256 ge8, __m256 ge16) {
    __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), k);
    __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), k);
    __m256 c = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 16), k);
    return _mm256_blendv_ps(_mm256_blendv_ps(a, b, ge8), c, ge16);
}

/* The channels after the last full tile, scalar: all of them on the 8 x 8 tiles, a single one on the
 * 16 x 16 tiles (two or more run as one masked tile there; for one the masked tile was slower). A tile
 * table holds, per channel, its knot values and then its rises, each padded to `pad` floats. Always
 * inlined, so compiled for the caller's target: called from AVX2 code once per row, a helper compiled
 * as baseline (SSE) code cost about 0.1 us a call on a Zen 3, even with nothing to do (140 us on a
 * 1000 x 16 backward that takes 17 us without it). */
#define INLINE_HELPER static inline __attribute__((always_inline))
INLINE_HELPER void tile_tail_fwd(const float *x, const float *tab, int pad, float *out, float *rises, int64_t b,
                                 int rows, int32_t C, int32_t first, int32_t K, float grid_min, float inv_delta) {
    const float last_cell = (float)(K - 2);
    for (int r = 0; r < rows; ++r) { /* the channels after the last full tile */
        for (int32_t ch = first; ch < C; ++ch) {
            float p = (x[(b + r) * C + ch] - grid_min) * inv_delta;
            float q = p >= 0.0f ? p : 0.0f;
            q = q <= last_cell ? q : last_cell;
            int32_t k = (int32_t)q;
            const float *ct = tab + (int64_t)ch * 2 * pad;
            out[(b + r) * C + ch] = ct[k] + ct[pad + k] * (p - (float)k);
            if (rises) rises[(b + r) * C + ch] = ct[pad + k];
        }
    }
}

INLINE_HELPER void tile_tail_bwd(const float *x, const float *tab, int pad, const float *g, float *gx, float *acc,
                                 int64_t b, int rows, int32_t C, int32_t first, int32_t K, float grid_min,
                                 float inv_delta) {
    const float last_cell = (float)(K - 2);
    for (int r = 0; r < rows; ++r) {
        for (int32_t ch = first; ch < C; ++ch) {
            int64_t e = (b + r) * C + ch;
            float p = (x[e] - grid_min) * inv_delta;
            float q = p >= 0.0f ? p : 0.0f;
            q = q <= last_cell ? q : last_cell;
            int32_t k = (int32_t)q;
            float frac = p - (float)k;
            const float *ct = tab + (int64_t)ch * 2 * pad;
            float gvv = g[e];
            if (gx) gx[e] = gvv * ct[pad + k] * inv_delta;
            if (acc) {
                float right = gvv * frac;
                acc[ch * K + k] += gvv - right;
                acc[ch * K + k + 1] += right;
            }
        }
    }
}

/* Add a (left, right) pair (the low two floats of `pair`) to a cell of a pair table: one 64-bit load,
 * add and store instead of two scalar read-modify-writes (the stores were the bottleneck). */
INLINE_HELPER void add_pair(float *cell, __m128 pair) {
    _mm_store_sd((double *)cell, _mm_castps_pd(_mm_add_ps(_mm_castpd_ps(_mm_load_sd((const double *)cell)), pair)));
}

/* Fold the (left, right) pair sums per cell of channels [0, channels) into acc: knot k gets the left sum
 * of cell k and the right sum of cell k - 1. */
static void fold_pairs(const float *pairs, float *acc, int32_t channels, int32_t K) {
    for (int64_t ch = 0; ch < channels; ++ch) {
        const float *pr = pairs + 2 * ch * K;
        float *a = acc + ch * K;
        a[0] += pr[0];
        for (int32_t k = 1; k + 1 < K; ++k) a[k] += pr[2 * k] + pr[2 * k - 1];
        a[K - 1] += pr[2 * (K - 2) + 1];
    }
}

/* (c, rise) of every channel padded to 24 floats. */
static float *tile_tables(const float *c, int64_t C, int32_t K) {
    float *tab = (float *)workspace(WS_TABLE, sizeof(float) * (size_t)(2 * C * TILE_KNOTS), 1);
    if (!tab) return NULL;
    for (int64_t ch = 0; ch < C; ++ch) {
        float *ct = tab + ch * 2 * TILE_KNOTS, *rt = ct + TILE_KNOTS;
        for (int32_t k = 0; k < K; ++k) ct[k] = c[ch * K + k];
        for (int32_t k = 0; k + 1 < K; ++k) rt[k] = c[ch * K + k + 1] - c[ch * K + k];
    }
    return tab;
}

/* Rows [b0, b0 + 8 * n8) of the forward; returns how many rows it did. With `rises`, each element's
 * cell rise (the slope before the 1 / delta) is also stored, row-major like x, for backward_rises. */
__attribute__((target("avx2"))) static int64_t tile_fwd_f32(const float *x, const float *tab, float *out,
                                                             float *rises, int64_t b0, int64_t b1, int32_t C,
                                                             int32_t K, float grid_min, float inv_delta) {
    const int64_t rows = (b1 - b0) & ~(int64_t)7;
    const int32_t C8 = C & ~7;
    const __m256 x0 = _mm256_set1_ps(grid_min), inv = _mm256_set1_ps(inv_delta);
    const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps((float)(K - 2));
    const __m256i seven = _mm256_set1_epi32(7), fifteen = _mm256_set1_epi32(15);
    for (int64_t b = b0; b < b0 + rows; b += 8) {
        for (int32_t c0 = 0; c0 < C8; c0 += 8) {
            __m256 v[8], w[8];
            for (int r = 0; r < 8; ++r) v[r] = _mm256_loadu_ps(x + (b + r) * C + c0);
            transpose8(v);
            for (int j = 0; j < 8; ++j) {
                const float *ct = tab + (int64_t)(c0 + j) * 2 * TILE_KNOTS;
                __m256 p = _mm256_mul_ps(_mm256_sub_ps(v[j], x0), inv);
                __m256 q = _mm256_min_ps(_mm256_max_ps(p, zero), last);
                __m256i k = _mm256_cvttps_epi32(q);
                __m256 frac = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
                __m256 ge8 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, seven));
                __m256 ge16 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, fifteen));
                __m256 cv = lookup24(ct, k, ge8, ge16), rv = lookup24(ct + TILE_KNOTS, k, ge8, ge16);
                v[j] = _mm256_add_ps(cv, _mm256_mul_ps(rv, frac));
                w[j] = rv;
            }
            transpose8(v);
            for (int r = 0; r < 8; ++r) _mm256_storeu_ps(out + (b + r) * C + c0, v[r]);
            if (rises) {
                transpose8(w);
                for (int r = 0; r < 8; ++r) _mm256_storeu_ps(rises + (b + r) * C + c0, w[r]);
            }
        }
        tile_tail_fwd(x, tab, TILE_KNOTS, out, rises, b, 8, C, C8, K, grid_min, inv_delta);
    }
    return rows;
}

/* Rows [b0, b0 + 8 * n8) of the backward: grad_x (if gx) and the scatter into acc (if acc). */
__attribute__((target("avx2"))) static int64_t tile_bwd_f32(const float *x, const float *tab, const float *g,
                                                             float *gx, float *acc, int64_t b0, int64_t b1,
                                                             int32_t C, int32_t K, float grid_min,
                                                             float inv_delta) {
    const int64_t rows = (b1 - b0) & ~(int64_t)7;
    const int32_t C8 = C & ~7;
    const __m256 x0 = _mm256_set1_ps(grid_min), inv = _mm256_set1_ps(inv_delta);
    const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps((float)(K - 2));
    const __m256i seven = _mm256_set1_epi32(7), fifteen = _mm256_set1_epi32(15);
    int32_t sidx[8][8];
    float spair[8][16];
    /* The knot-value gradient of the tiles goes to a table of (left, right) pairs per cell (add_pair):
     * pairs[2 i] sums g (1 - frac) for knot i, pairs[2 i + 1] sums g frac for knot i + 1; they are
     * folded into acc once, after the tiles. */
    float *pairs = acc ? (float *)workspace(WS_PAIRS, sizeof(float) * (size_t)(2 * C * K), 1) : NULL;
    if (acc && !pairs) return 0; /* the scalar rows then do everything */
    for (int64_t b = b0; b < b0 + rows; b += 8) {
        for (int32_t c0 = 0; c0 < C8; c0 += 8) {
            __m256 v[8], gv[8];
            for (int r = 0; r < 8; ++r) {
                v[r] = _mm256_loadu_ps(x + (b + r) * C + c0);
                gv[r] = _mm256_loadu_ps(g + (b + r) * C + c0);
            }
            transpose8(v);
            transpose8(gv);
            for (int j = 0; j < 8; ++j) {
                const float *ct = tab + (int64_t)(c0 + j) * 2 * TILE_KNOTS;
                __m256 p = _mm256_mul_ps(_mm256_sub_ps(v[j], x0), inv);
                __m256 q = _mm256_min_ps(_mm256_max_ps(p, zero), last);
                __m256i k = _mm256_cvttps_epi32(q);
                if (acc) {
                    __m256 frac = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
                    __m256i idx = _mm256_add_epi32(k, _mm256_set1_epi32((c0 + j) * K));
                    _mm256_storeu_si256((__m256i *)sidx[j], idx);
                    __m256 right = _mm256_mul_ps(gv[j], frac);
                    __m256 left = _mm256_sub_ps(gv[j], right);
                    /* (l0 r0 l1 r1 | l4 r4 l5 r5) and (l2 r2 l3 r3 | l6 r6 l7 r7): rows PAIR_ROW[q] */
                    _mm256_storeu_ps(spair[j], _mm256_unpacklo_ps(left, right));
                    _mm256_storeu_ps(spair[j] + 8, _mm256_unpackhi_ps(left, right));
                }
                if (gx) {
                    __m256 ge8 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, seven));
                    __m256 ge16 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, fifteen));
                    __m256 rv = lookup24(ct + TILE_KNOTS, k, ge8, ge16);
                    v[j] = _mm256_mul_ps(_mm256_mul_ps(gv[j], rv), inv);
                }
            }
            if (gx) {
                transpose8(v);
                for (int r = 0; r < 8; ++r) _mm256_storeu_ps(gx + (b + r) * C + c0, v[r]);
            }
            if (acc) { /* row by row: consecutive adds hit different channels, no store-load chains */
                static const int PAIR_ROW[8] = {0, 1, 4, 5, 2, 3, 6, 7};
                for (int q = 0; q < 8; ++q) {
                    const int r = PAIR_ROW[q];
                    for (int j = 0; j < 8; ++j)
                        add_pair(pairs + 2 * (int64_t)sidx[j][r],
                                 _mm_castpd_ps(_mm_load_sd((const double *)(spair[j] + 2 * q))));
                }
            }
        }
        tile_tail_bwd(x, tab, TILE_KNOTS, g, gx, acc, b, 8, C, C8, K, grid_min, inv_delta);
    }
    if (acc) fold_pairs(pairs, acc, C8, K);
    return rows;
}

/* ---- AVX-512 tiles for float32 dense layers with at most 32 knots ------------------------------
 * The same scheme 16 x 16: a channel's knot values (and rises) fit two zmm registers, so each lookup
 * is ONE vpermt2ps instead of three vpermps and two blends, and the 16 x 16 transpose costs a quarter
 * of a shuffle per element per direction against 3/8 for 8 x 8. On CPUs where shuffles and permutes
 * share one port (Intel), that port bounds the AVX2 tiles; these issue about a third as many
 * shuffle-port operations per element. The arithmetic is the AVX2 tiles' operation by operation
 * (no FMA: -ffp-contract=off, and the intrinsics are separate multiplies and adds). */
#define TILE16_KNOTS 32

__attribute__((target("avx512f"))) static inline void transpose16(__m512 *r) {
    __m512 t[16], s[16];
    for (int i = 0; i < 16; i += 2) { /* per 128-bit block b: (r_i[4b], r_i+1[4b], r_i[4b+1], r_i+1[4b+1]) ... */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* s[4g + j], block b: column 4b + j of rows 4g .. 4g + 3 */
        s[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; ++j) { /* column 4b + j = block b of s[j], s[4 + j], s[8 + j], s[12 + j] */
        __m512 p = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x88), q = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xDD);
        __m512 u = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x88), w = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(p, u, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(p, u, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(q, w, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(q, w, 0xDD);
    }
}

/* (c, rise) of every channel padded to 32 floats. */
static float *tile16_tables(const float *c, int64_t C, int32_t K) {
    float *tab = (float *)workspace(WS_TABLE, sizeof(float) * (size_t)(2 * C * TILE16_KNOTS), 1);
    if (!tab) return NULL;
    for (int64_t ch = 0; ch < C; ++ch) {
        float *ct = tab + ch * 2 * TILE16_KNOTS, *rt = ct + TILE16_KNOTS;
        for (int32_t k = 0; k < K; ++k) ct[k] = c[ch * K + k];
        for (int32_t k = 0; k + 1 < K; ++k) rt[k] = c[ch * K + k + 1] - c[ch * K + k];
    }
    return tab;
}

/* The cell k of a vector of 16 inputs of one channel, and p - k (NaN -> cell 0, as LOCATE). */
#define LOCATE16(vx)                                                                         \
    __m512 p = _mm512_mul_ps(_mm512_sub_ps((vx), x0), inv);                                  \
    __m512i k = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(p, zero), last));

/* A 16-row block's channels [c0, c0 + n), n <= 16: n < 16 only for the two or more channels after the
 * last full block, whose loads and stores are masked to them (the masked-off columns load as zeros and
 * are never looked up or stored). Always inlined: with n = 16 the loops unroll and the vectors stay in
 * registers. */
#define TILE16_HELPER __attribute__((target("avx512f"), always_inline)) static inline
TILE16_HELPER void tile16_fwd_block(const float *x, const float *tab, float *out, int64_t b, int32_t C, int32_t c0,
                                    int n, __m512 x0, __m512 inv, __m512 zero, __m512 last) {
    const __mmask16 cols = (__mmask16)((1u << n) - 1);
    __m512 v[16];
    for (int r = 0; r < 16; ++r)
        v[r] = n == 16 ? _mm512_loadu_ps(x + (b + r) * C + c0) : _mm512_maskz_loadu_ps(cols, x + (b + r) * C + c0);
    transpose16(v);
    for (int j = 0; j < n; ++j) {
        const float *ct = tab + (int64_t)(c0 + j) * 2 * TILE16_KNOTS;
        LOCATE16(v[j])
        __m512 frac = _mm512_sub_ps(p, _mm512_cvtepi32_ps(k));
        __m512 cv = _mm512_permutex2var_ps(_mm512_loadu_ps(ct), k, _mm512_loadu_ps(ct + 16));
        __m512 rv = _mm512_permutex2var_ps(_mm512_loadu_ps(ct + 32), k, _mm512_loadu_ps(ct + 48));
        v[j] = _mm512_add_ps(cv, _mm512_mul_ps(rv, frac));
    }
    transpose16(v);
    for (int r = 0; r < 16; ++r) {
        if (n == 16) _mm512_storeu_ps(out + (b + r) * C + c0, v[r]);
        else _mm512_mask_storeu_ps(out + (b + r) * C + c0, cols, v[r]);
    }
}

/* Rows [b0, b0 + 16 * n16) of the forward, every channel; returns how many rows it did. */
__attribute__((target("avx512f"))) static int64_t tile16_fwd_f32(const float *x, const float *tab, float *out,
                                                                int64_t b0, int64_t b1, int32_t C, int32_t K,
                                                                float grid_min, float inv_delta) {
    const int64_t rows = (b1 - b0) & ~(int64_t)15;
    const int32_t C16 = C & ~15;
    const __m512 x0 = _mm512_set1_ps(grid_min), inv = _mm512_set1_ps(inv_delta);
    const __m512 zero = _mm512_setzero_ps(), last = _mm512_set1_ps((float)(K - 2));
    for (int64_t b = b0; b < b0 + rows; b += 16) {
        for (int32_t c0 = 0; c0 < C16; c0 += 16) tile16_fwd_block(x, tab, out, b, C, c0, 16, x0, inv, zero, last);
        if (C - C16 >= 2) tile16_fwd_block(x, tab, out, b, C, C16, C - C16, x0, inv, zero, last);
        else tile_tail_fwd(x, tab, TILE16_KNOTS, out, NULL, b, 16, C, C16, K, grid_min, inv_delta);
    }
    return rows;
}

/* The backward of a 16-row block's channels [c0, c0 + n), as tile16_fwd_block: grad_x (if gx) and the
 * block's (left, right) pairs added to the pair table (if pairs). */
TILE16_HELPER void tile16_bwd_block(const float *x, const float *tab, const float *g, float *gx, float *pairs,
                                    int64_t b, int32_t C, int32_t c0, int n, int32_t K, __m512 x0, __m512 inv,
                                    __m512 zero, __m512 last) {
    const __m512i lo_pairs = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_pairs = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __mmask16 cols = (__mmask16)((1u << n) - 1);
    int32_t sidx[16][16];
    float spair[16][32]; /* channel j: (left, right) of rows 0 .. 15 in row order */
    __m512 v[16], gv[16];
    for (int r = 0; r < 16; ++r) {
        const int64_t at = (b + r) * C + c0;
        v[r] = n == 16 ? _mm512_loadu_ps(x + at) : _mm512_maskz_loadu_ps(cols, x + at);
        gv[r] = n == 16 ? _mm512_loadu_ps(g + at) : _mm512_maskz_loadu_ps(cols, g + at);
    }
    transpose16(v);
    transpose16(gv);
    for (int j = 0; j < n; ++j) {
        const float *ct = tab + (int64_t)(c0 + j) * 2 * TILE16_KNOTS;
        LOCATE16(v[j])
        if (pairs) {
            __m512 frac = _mm512_sub_ps(p, _mm512_cvtepi32_ps(k));
            _mm512_storeu_si512((void *)sidx[j], _mm512_add_epi32(k, _mm512_set1_epi32((c0 + j) * K)));
            __m512 right = _mm512_mul_ps(gv[j], frac);
            __m512 left = _mm512_sub_ps(gv[j], right);
            _mm512_storeu_ps(spair[j], _mm512_permutex2var_ps(left, lo_pairs, right));
            _mm512_storeu_ps(spair[j] + 16, _mm512_permutex2var_ps(left, hi_pairs, right));
        }
        if (gx) {
            __m512 rv = _mm512_permutex2var_ps(_mm512_loadu_ps(ct + 32), k, _mm512_loadu_ps(ct + 48));
            v[j] = _mm512_mul_ps(_mm512_mul_ps(gv[j], rv), inv);
        }
    }
    if (gx) {
        transpose16(v);
        for (int r = 0; r < 16; ++r) {
            if (n == 16) _mm512_storeu_ps(gx + (b + r) * C + c0, v[r]);
            else _mm512_mask_storeu_ps(gx + (b + r) * C + c0, cols, v[r]);
        }
    }
    if (pairs) { /* row by row: consecutive adds hit different channels, no store-load chains */
        for (int r = 0; r < 16; ++r) {
            for (int j = 0; j < n; ++j)
                add_pair(pairs + 2 * (int64_t)sidx[j][r],
                         _mm_castpd_ps(_mm_load_sd((const double *)(spair[j] + 2 * r))));
        }
    }
}

/* Rows [b0, b0 + 16 * n16) of the backward, every channel: grad_x (if gx) and the knot-value gradient
 * into acc (if acc), through the (left, right) pair table of the AVX2 tiles. */
__attribute__((target("avx512f"))) static int64_t tile16_bwd_f32(const float *x, const float *tab, const float *g,
                                                                float *gx, float *acc, int64_t b0, int64_t b1,
                                                                int32_t C, int32_t K, float grid_min,
                                                                float inv_delta) {
    const int64_t rows = (b1 - b0) & ~(int64_t)15;
    const int32_t C16 = C & ~15;
    const __m512 x0 = _mm512_set1_ps(grid_min), inv = _mm512_set1_ps(inv_delta);
    const __m512 zero = _mm512_setzero_ps(), last = _mm512_set1_ps((float)(K - 2));
    float *pairs = acc ? (float *)workspace(WS_PAIRS, sizeof(float) * (size_t)(2 * C * K), 1) : NULL;
    if (acc && !pairs) return 0; /* the scalar rows then do everything */
    for (int64_t b = b0; b < b0 + rows; b += 16) {
        for (int32_t c0 = 0; c0 < C16; c0 += 16)
            tile16_bwd_block(x, tab, g, gx, pairs, b, C, c0, 16, K, x0, inv, zero, last);
        if (C - C16 >= 2) tile16_bwd_block(x, tab, g, gx, pairs, b, C, C16, C - C16, K, x0, inv, zero, last);
        else tile_tail_bwd(x, tab, TILE16_KNOTS, g, gx, acc, b, 16, C, C16, K, grid_min, inv_delta);
    }
    if (acc) fold_pairs(pairs, acc, C, K);
    return rows;
}
#endif

static int use_avx2 = 0;
static int use_avx512 = 0;
static int tile_cap = 16; /* widest tiles allowed (set_tile_cap): tests and benchmarks run the narrower ones too */

/* Which tiles float32 dense rows go through: 16 x 16 (AVX-512F, <= 32 knots), 8 x 8 (AVX2, <= 24
 * knots) or none (0: the compiled row loops). The tables and the tiles ask the same question. */
static int tile_width(int32_t K, int64_t inner) {
    if (inner != 1) return 0;
#ifdef HAVE_AVX2_PATH
    if (use_avx512 && tile_cap >= 16 && K <= TILE16_KNOTS) return 16;
    if (use_avx2 && tile_cap >= 8 && K <= TILE_KNOTS) return 8;
#endif
    (void)K;
    return 0;
}

/* Float32 dense rows go through the tiles tile_width picks (16 x 16, 8 x 8, or none). */
static int64_t tiles_fwd_f32(const float *x, const float *c, const float *rise, float *out, float *rises,
                             int64_t b0, int64_t b1, int32_t C, int32_t K, float grid_min, float inv_delta,
                             const float *tab) {
    (void)c; (void)rise;
#ifdef HAVE_AVX2_PATH
    if (tab && tile_width(K, 1) == 16) return tile16_fwd_f32(x, tab, out, b0, b1, C, K, grid_min, inv_delta);
    if (tab) return tile_fwd_f32(x, tab, out, rises, b0, b1, C, K, grid_min, inv_delta);
#endif
    (void)x; (void)out; (void)rises; (void)b0; (void)b1; (void)C; (void)K; (void)grid_min; (void)inv_delta;
    (void)tab;
    return 0;
}
static int64_t tiles_fwd_f64(const double *x, const double *c, const double *rise, double *out, double *rises,
                             int64_t b0, int64_t b1, int32_t C, int32_t K, double grid_min, double inv_delta,
                             const float *tab) {
    (void)x; (void)c; (void)rise; (void)out; (void)rises; (void)b0; (void)b1; (void)C; (void)K; (void)grid_min;
    (void)inv_delta; (void)tab;
    return 0;
}
static int64_t tiles_bwd_f32(const float *x, const float *g, float *gx, float *acc, int64_t b0, int64_t b1,
                             int32_t C, int32_t K, float grid_min, float inv_delta, const float *tab) {
#ifdef HAVE_AVX2_PATH
    if (tab && tile_width(K, 1) == 16) return tile16_bwd_f32(x, tab, g, gx, acc, b0, b1, C, K, grid_min, inv_delta);
    if (tab) return tile_bwd_f32(x, tab, g, gx, acc, b0, b1, C, K, grid_min, inv_delta);
#endif
    (void)x; (void)g; (void)gx; (void)acc; (void)b0; (void)b1; (void)C; (void)K; (void)grid_min;
    (void)inv_delta; (void)tab;
    return 0;
}
static int64_t tiles_bwd_f64(const double *x, const double *g, double *gx, double *acc, int64_t b0,
                             int64_t b1, int32_t C, int32_t K, double grid_min, double inv_delta,
                             const float *tab) {
    (void)x; (void)g; (void)gx; (void)acc; (void)b0; (void)b1; (void)C; (void)K; (void)grid_min;
    (void)inv_delta; (void)tab;
    return 0;
}
static float *tables_f32(const float *c, int64_t C, int32_t K, int64_t inner) {
#ifdef HAVE_AVX2_PATH
    int width = tile_width(K, inner);
    if (width == 16) return tile16_tables(c, C, K);
    if (width == 8) return tile_tables(c, C, K);
#endif
    (void)c; (void)C; (void)K; (void)inner;
    return NULL;
}
static float *tables_f64(const double *c, int64_t C, int32_t K, int64_t inner) {
    (void)c; (void)C; (void)K; (void)inner;
    return NULL;
}

/* Whether the per-call rise table is read: by every row the tiles leave (the remainder of a row range
 * that is not a whole number of tiles, with `ranges` ranges cut as the kernels cut them), and by every
 * row when there are no tiles. With tiles and whole tiles it is not built (21 KB a 256-spline layer). */
static int needs_rise(const float *tab, int32_t K, int64_t inner, int64_t outer, int64_t ranges) {
    const int64_t width = tile_width(K, inner);
    if (!tab || width <= 0) return 1;
    for (int64_t part = 0; part < ranges; ++part) {
        int64_t b0 = split_at(outer, part, ranges), b1 = split_at(outer, part + 1, ranges);
        if ((b1 - b0) % width) return 1;
    }
    return 0;
}

/* Rows [b0, b1) from saved rises, any CPU; acc (if given) gets the knot-value gradient of these rows. */
INLINE_HELPER void rises_rows_scalar(const float *x, const float *rises, const float *g, float *gx, float *acc,
                                     int64_t b0, int64_t b1, int32_t first, int32_t C, int32_t K, float grid_min,
                                     float inv_delta) {
    const float last_cell = (float)(K - 2);
    for (int64_t b = b0; b < b1; ++b) {
        for (int32_t ch = first; ch < C; ++ch) {
            int64_t e = b * C + ch;
            float gvv = g[e];
            if (gx) gx[e] = gvv * rises[e] * inv_delta;
            if (acc) {
                LOCATE(float, x[e])
                float right = gvv * frac;
                acc[ch * K + k] += gvv - right;
                acc[ch * K + k + 1] += right;
            }
        }
    }
}

#ifdef HAVE_AVX2_PATH
/* The same rows, eight channels per vector; the knot-value gradient goes through a (left, right) pair
 * table per cell (one 64-bit add per element, as the tiles do) folded into acc at the end. Returns -1
 * when the pair table cannot be had. */
__attribute__((target("avx2"))) static int rises_rows_avx2(const float *x, const float *rises, const float *g,
                                                            float *gx, float *acc, int64_t b0, int64_t b1,
                                                            int32_t C, int32_t K, float grid_min, float inv_delta) {
    const int32_t C8 = C & ~7;
    const __m256 x0 = _mm256_set1_ps(grid_min), inv = _mm256_set1_ps(inv_delta);
    const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps((float)(K - 2));
    const __m256i lane = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(2 * K));
    float *pairs = acc ? (float *)workspace(WS_PAIRS, sizeof(float) * (size_t)(2 * C8 * K), 1) : NULL;
    if (acc && C8 && !pairs) return -1;
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * C;
        for (int32_t c0 = 0; c0 < C8; c0 += 8) {
            __m256 gv = _mm256_loadu_ps(g + row + c0);
            if (gx) _mm256_storeu_ps(gx + row + c0, _mm256_mul_ps(_mm256_mul_ps(gv, _mm256_loadu_ps(rises + row + c0)), inv));
            if (!acc) continue;
            __m256 p = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + row + c0), x0), inv);
            __m256 q = _mm256_min_ps(_mm256_max_ps(p, zero), last);
            __m256i k = _mm256_cvttps_epi32(q);
            __m256 frac = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
            __m256 right = _mm256_mul_ps(gv, frac), left = _mm256_sub_ps(gv, right);
            /* float offset of each lane's pair in the table of channels c0 .. c0 + 7 */
            __m256i at = _mm256_add_epi32(_mm256_add_epi32(k, k), lane);
            __m256 lo = _mm256_unpacklo_ps(left, right), hi = _mm256_unpackhi_ps(left, right);
            /* lo = (l0 r0 l1 r1 | l4 r4 l5 r5), hi = (l2 r2 l3 r3 | l6 r6 l7 r7): lane l's pair is the low
             * or the high half of one of the four 128-bit halves */
            __m128 p01 = _mm256_castps256_ps128(lo), p23 = _mm256_castps256_ps128(hi);
            __m128 p45 = _mm256_extractf128_ps(lo, 1), p67 = _mm256_extractf128_ps(hi, 1);
            __m128i a0 = _mm256_castsi256_si128(at), a1 = _mm256_extracti128_si256(at, 1);
            float *base = pairs + 2 * (int64_t)c0 * K;
            add_pair(base + _mm_cvtsi128_si32(a0), p01);
            add_pair(base + _mm_extract_epi32(a0, 1), _mm_movehl_ps(p01, p01));
            add_pair(base + _mm_extract_epi32(a0, 2), p23);
            add_pair(base + _mm_extract_epi32(a0, 3), _mm_movehl_ps(p23, p23));
            add_pair(base + _mm_cvtsi128_si32(a1), p45);
            add_pair(base + _mm_extract_epi32(a1, 1), _mm_movehl_ps(p45, p45));
            add_pair(base + _mm_extract_epi32(a1, 2), p67);
            add_pair(base + _mm_extract_epi32(a1, 3), _mm_movehl_ps(p67, p67));
        }
        rises_rows_scalar(x, rises, g, gx, acc, b, b + 1, C8, C, K, grid_min, inv_delta);
    }
    if (acc) fold_pairs(pairs, acc, C8, K);
    return 0;
}
#endif

/* Rows [b0, b1) of a dense layer's backward from saved rises (see "saved rises" below); -1 when out of
 * memory. Float64 layers never save rises (saves_rises), so its twin is never called. */
static int rises_rows_f32(const float *x, const float *rises, const float *g, float *gx, float *acc, int64_t b0,
                          int64_t b1, int32_t C, int32_t K, float grid_min, float inv_delta) {
#ifdef HAVE_AVX2_PATH
    if (use_avx2) return rises_rows_avx2(x, rises, g, gx, acc, b0, b1, C, K, grid_min, inv_delta);
#endif
    rises_rows_scalar(x, rises, g, gx, acc, b0, b1, 0, C, K, grid_min, inv_delta);
    return 0;
}
static int rises_rows_f64(const double *x, const double *rises, const double *g, double *gx, double *acc, int64_t b0,
                          int64_t b1, int32_t C, int32_t K, double grid_min, double inv_delta) {
    (void)x; (void)rises; (void)g; (void)gx; (void)acc; (void)b0; (void)b1; (void)C; (void)K; (void)grid_min;
    (void)inv_delta;
    return -1;
}

#define DEFINE_TRAIN_KERNELS(T, S)                                                       \
static void rise_table_##S(const T *RESTRICT c, T *RESTRICT rise, int64_t n, int32_t K) { \
    for (int64_t s = 0; s < n; ++s) {                                                    \
        const T *cr = c + s * K;                                                         \
        T *r = rise + s * K;                                                             \
        for (int32_t k = 0; k + 1 < K; ++k) r[k] = cr[k + 1] - cr[k];                    \
        r[K - 1] = 0;                                                                    \
    }                                                                                    \
}                                                                                        \
                                                                                         \
TARGETS static void fwd_dense_rows_##S(const T *RESTRICT x, const T *RESTRICT c,          \
                                       const T *RESTRICT rise, T *RESTRICT out,          \
                                       T *RESTRICT rises, int64_t b0, int64_t b1,        \
                                       int32_t C, int32_t K, T grid_min, T inv_delta) {  \
    const T last_cell = (T)(K - 2);                                                      \
    for (int64_t b = b0; b < b1; ++b) {                                                  \
        const T *RESTRICT xr = x + b * C;                                                \
        T *RESTRICT o = out + b * C;                                                     \
        T *RESTRICT sr = rises ? rises + b * C : NULL;                                   \
        for (int32_t ch = 0; ch < C; ++ch) { /* (-O3 unswitches the loop on sr) */        \
            LOCATE(T, xr[ch])                                                            \
            int32_t i = ch * K + k;                                                      \
            o[ch] = c[i] + rise[i] * frac;                                               \
            if (sr) sr[ch] = rise[i];                                                    \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
TARGETS static void fwd_conv_rows_##S(const T *RESTRICT x, const T *RESTRICT c,           \
                                      const T *RESTRICT rise, T *RESTRICT out,           \
                                      int64_t b0, int64_t b1, int64_t C, int64_t inner,  \
                                      int32_t K, T grid_min, T inv_delta) {              \
    const T last_cell = (T)(K - 2);                                                      \
    for (int64_t b = b0; b < b1; ++b) {                                                  \
        for (int64_t ch = 0; ch < C; ++ch) {                                             \
            const T *RESTRICT xr = x + (b * C + ch) * inner;                             \
            T *RESTRICT o = out + (b * C + ch) * inner;                                  \
            const T *RESTRICT cc = c + ch * K;                                           \
            const T *RESTRICT rr = rise + ch * K;                                        \
            for (int64_t i = 0; i < inner; ++i) {                                        \
                LOCATE(T, xr[i])                                                         \
                o[i] = cc[k] + rr[k] * frac;                                             \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* Dense backward of rows [b0, b1): grad_x (vectorised) and, when acc is given, the      \
 * coefficient gradient scattered into acc (scalar, conflict-free within a row). */      \
TARGETS static void bwd_dense_rows_##S(const T *RESTRICT x, const T *RESTRICT rise,       \
                                       const T *RESTRICT g, T *RESTRICT gx,              \
                                       T *RESTRICT acc, int32_t *RESTRICT idx,           \
                                       T *RESTRICT right, int64_t b0, int64_t b1,        \
                                       int32_t C, int32_t K, T grid_min, T inv_delta) {  \
    const T last_cell = (T)(K - 2);                                                      \
    for (int64_t b = b0; b < b1; ++b) {                                                  \
        const T *RESTRICT xr = x + b * C;                                                \
        const T *RESTRICT gr = g + b * C;                                                \
        if (gx) {                                                                        \
            T *RESTRICT gxr = gx + b * C;                                                \
            if (acc) {                                                                   \
                for (int32_t ch = 0; ch < C; ++ch) {                                     \
                    LOCATE(T, xr[ch])                                                    \
                    int32_t i = ch * K + k;                                              \
                    T gv = gr[ch];                                                       \
                    gxr[ch] = gv * rise[i] * inv_delta;                                  \
                    idx[ch] = i;                                                         \
                    right[ch] = gv * frac;                                               \
                }                                                                        \
            } else {                                                                     \
                for (int32_t ch = 0; ch < C; ++ch) {                                     \
                    LOCATE(T, xr[ch])                                                    \
                    (void)frac;                                                          \
                    gxr[ch] = gr[ch] * rise[ch * K + k] * inv_delta;                     \
                }                                                                        \
                continue;                                                                \
            }                                                                            \
        } else {                                                                         \
            for (int32_t ch = 0; ch < C; ++ch) {                                         \
                LOCATE(T, xr[ch])                                                        \
                idx[ch] = ch * K + k;                                                    \
                right[ch] = gr[ch] * frac;                                               \
            }                                                                            \
        }                                                                                \
        for (int32_t ch = 0; ch < C; ++ch) {                                             \
            int32_t i = idx[ch];                                                         \
            T r = right[ch];                                                             \
            acc[i] += gr[ch] - r;                                                        \
            acc[i + 1] += r;                                                             \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* Conv backward of rows [b0, b1). The inner loop stays in one channel, so consecutive   \
 * elements often hit the same accumulator: 4 interleaved accumulator sets (element i    \
 * adds into set i % 4) break the store-to-load chains; they are summed per channel. */  \
TARGETS static void bwd_conv_rows_##S(const T *RESTRICT x, const T *RESTRICT rise,        \
                                      const T *RESTRICT g, T *RESTRICT gx,               \
                                      T *RESTRICT acc, T *RESTRICT local, int64_t b0,    \
                                      int64_t b1, int64_t C, int64_t inner, int32_t K,   \
                                      T grid_min, T inv_delta) {                         \
    const T last_cell = (T)(K - 2);                                                      \
    for (int64_t ch = 0; ch < C; ++ch) {                                                 \
        const T *RESTRICT rr = rise + ch * K;                                            \
        if (acc) memset(local, 0, sizeof(T) * (size_t)(4 * K));                          \
        for (int64_t b = b0; b < b1; ++b) {                                              \
            int64_t base = (b * C + ch) * inner;                                         \
            const T *RESTRICT xr = x + base;                                             \
            const T *RESTRICT gr = g + base;                                             \
            if (gx) {                                                                    \
                T *RESTRICT gxr = gx + base;                                             \
                for (int64_t i = 0; i < inner; ++i) {                                    \
                    LOCATE(T, xr[i])                                                     \
                    (void)frac;                                                          \
                    gxr[i] = gr[i] * rr[k] * inv_delta;                                  \
                }                                                                        \
            }                                                                            \
            if (acc) {                                                                   \
                for (int64_t i = 0; i < inner; ++i) {                                    \
                    LOCATE(T, xr[i])                                                     \
                    T *a = local + (i & 3) * K + k;                                      \
                    T gv = gr[i];                                                        \
                    T r = gv * frac;                                                     \
                    a[0] += gv - r;                                                      \
                    a[1] += r;                                                           \
                }                                                                        \
            }                                                                            \
        }                                                                                \
        if (acc) {                                                                       \
            T *a = acc + ch * K;                                                         \
            for (int32_t k = 0; k < K; ++k)                                              \
                a[k] += ((local[k] + local[K + k]) + (local[2 * K + k] + local[3 * K + k])); \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* rises (dense layouts only, inner == 1): where given, each element's cell rise is stored too (see \
 * backward_rises); only the 8 x 8 tiles and the row loops write it, so the 16 x 16 tiles are      \
 * skipped then (saves_rises never asks it of them in training; letting them store rises made      \
 * their forward without rises 7-18 % slower on a Zen 4: more vectors live).                       */ \
static int forward_any_##S(const T *x, const T *c, T *out, T *rises, int64_t outer, int64_t C, \
                           int64_t inner, int32_t K, T grid_min, T inv_delta, int threads) { \
    int64_t elems = outer * C * inner;                                                   \
    int parts = (threads > 1 && elems >= PARALLEL_MIN_ELEMS) ? threads : 1;              \
    if (parts > outer) parts = (int)max64(1, outer);                                     \
    float *tab = (rises && tile_width(K, inner) != 8) ? NULL : tables_##S(c, C, K, inner); \
    T *rise = NULL;                                                                      \
    if (needs_rise(tab, K, inner, outer, parts)) {                                       \
        rise = (T *)workspace(WS_RISE, sizeof(T) * (size_t)(C * K), 0);                  \
        if (!rise) return -1;                                                            \
        rise_table_##S(c, rise, C, K);                                                   \
    }                                                                                    \
    _Pragma("omp parallel for schedule(static) num_threads(parts) if (parts > 1)")       \
    for (int part = 0; part < parts; ++part) {                                           \
        int64_t b0 = split_at(outer, part, parts), b1 = split_at(outer, part + 1, parts); \
        if (inner == 1) {                                                                \
            b0 += tiles_fwd_##S(x, c, rise, out, rises, b0, b1, (int32_t)C, K, grid_min, inv_delta, tab); \
            fwd_dense_rows_##S(x, c, rise, out, rises, b0, b1, (int32_t)C, K, grid_min, inv_delta); \
        } else                                                                           \
            fwd_conv_rows_##S(x, c, rise, out, b0, b1, C, inner, K, grid_min, inv_delta); \
    }                                                                                    \
    return 0;                                                                            \
}                                                                                        \
                                                                                         \
static int forward_##S(const T *x, const T *c, T *out, int64_t outer, int64_t C,         \
                       int64_t inner, int32_t K, T grid_min, T inv_delta, int threads) { \
    return forward_any_##S(x, c, out, NULL, outer, C, inner, K, grid_min, inv_delta, threads); \
}                                                                                        \
                                                                                         \
/* rises (dense layouts only): what forward_any stored; then c is not read and no table is built. */ \
static int backward_any_##S(const T *x, const T *c, const T *rises, const T *g, T *gx, T *gc, \
                            int64_t outer, int64_t C, int64_t inner, int32_t K, T grid_min, \
                            T inv_delta, int threads) {                                  \
    int64_t table = C * K;                                                               \
    int64_t elems = outer * C * inner;                                                   \
    int64_t blocks = gc ? grad_blocks(outer, elems) : 1;                                 \
    if (!gc && threads > 1 && elems >= PARALLEL_MIN_ELEMS) blocks = min64(threads, max64(1, outer)); \
    float *tab = rises ? NULL : tables_##S(c, C, K, inner);                              \
    T *rise = NULL;                                                                      \
    if (!rises && needs_rise(tab, K, inner, outer, blocks)) {                            \
        rise = (T *)workspace(WS_RISE, sizeof(T) * (size_t)table, 0);                    \
        if (!rise) return -1;                                                            \
        rise_table_##S(c, rise, C, K);                                                   \
    }                                                                                    \
    T *scratch = (gc && blocks > 1) ? (T *)workspace(WS_SCRATCH, sizeof(T) * (size_t)((blocks - 1) * table), 1) : NULL; \
    if (gc && blocks > 1 && !scratch) return -1;                                         \
    if (gc) memset(gc, 0, sizeof(T) * (size_t)table);                                    \
    int parts = (threads > 1 && elems >= PARALLEL_MIN_ELEMS) ? threads : 1;              \
    int failed = 0;                                                                      \
    _Pragma("omp parallel for schedule(static) num_threads(parts) if (parts > 1) reduction(|:failed)") \
    for (int64_t blk = 0; blk < blocks; ++blk) {                                         \
        int64_t b0 = split_at(outer, blk, blocks), b1 = split_at(outer, blk + 1, blocks); \
        T *acc = gc ? (blk == 0 ? gc : scratch + (blk - 1) * table) : NULL;              \
        if (rises) {                                                                     \
            if (rises_rows_##S(x, rises, g, gx, acc, b0, b1, (int32_t)C, K, grid_min, inv_delta)) failed = 1; \
        } else if (inner == 1) {                                                         \
            b0 += tiles_bwd_##S(x, g, gx, acc, b0, b1, (int32_t)C, K, grid_min, inv_delta, tab); \
            int32_t *idx = (int32_t *)workspace(WS_IDX, sizeof(int32_t) * (size_t)C, 0); \
            T *right = (T *)workspace(WS_RIGHT, sizeof(T) * (size_t)C, 0);                \
            if (!idx || !right || (b0 < b1 && !rise)) failed = 1; /* (tiles out of memory) */ \
            else bwd_dense_rows_##S(x, rise, g, gx, acc, idx, right, b0, b1, (int32_t)C, K, \
                                    grid_min, inv_delta);                                \
        } else {                                                                         \
            T *local = (T *)workspace(WS_LOCAL, sizeof(T) * (size_t)(4 * K), 0);          \
            if (!local) failed = 1;                                                      \
            else bwd_conv_rows_##S(x, rise, g, gx, acc, local, b0, b1, C, inner, K,      \
                                   grid_min, inv_delta);                                 \
        }                                                                                \
    }                                                                                    \
    if (gc) {                                                                            \
        for (int64_t blk = 1; blk < blocks; ++blk) {                                     \
            const T *a = scratch + (blk - 1) * table;                                    \
            for (int64_t j = 0; j < table; ++j) gc[j] += a[j];                           \
        }                                                                                \
    }                                                                                    \
    return failed ? -1 : 0;                                                              \
}                                                                                        \
                                                                                         \
static int backward_##S(const T *x, const T *c, const T *g, T *gx, T *gc, int64_t outer, \
                        int64_t C, int64_t inner, int32_t K, T grid_min, T inv_delta,    \
                        int threads) {                                                   \
    return backward_any_##S(x, c, NULL, g, gx, gc, outer, C, inner, K, grid_min, inv_delta, threads); \
}

DEFINE_TRAIN_KERNELS(float, f32)
DEFINE_TRAIN_KERNELS(double, f64)

/* ---- float32 dense layers with saved rises -------------------------------------------------------
 * Why: on AVX2 (8 x 8 tiles) the backward was the spline's largest cost in a training step. It has to
 * find each element's cell again, read the cell's rise for the input gradient (through the tile
 * transposes and permutes), and scatter into the knot-value gradient. If the forward, which reads the
 * rise anyway, stores it (one more transpose and store per tile: the memory of one more activation),
 * the backward needs no tables and no transposes: grad_x = g * rise * inv_delta is a streaming multiply
 * (a ReLU-like cost), and the scatter runs on rows as they lie in memory, eight channels of one row
 * per vector, so the eight adds of a vector go to eight different channels' cells. Measured on a Zen 3
 * (AVX2): the 256 x 256 backward about 28 % faster, a 784-256-256-10 training step 0.01 to 0.04 of
 * ReLU's step faster (docs/benchmarks.md). Where the 16 x 16 AVX-512 tiles run, saves_rises says no:
 * measured on a Zen 4, storing the rise cost the 16-wide forward 5-7 us per 256 x 256 layer and saved the
 * backward 5-6 us, since its cost there is the knot-value scatter, not the rise lookup.
 *
 * The arithmetic of every output is that of the other paths (grad_x = (g * rise) * inv_delta, the
 * same (left, right) = (g - g * frac, g * frac) per element); the knot-value gradient sums a cell's
 * rows in row order, so it can differ from the tiles' sums in the last bits (a different order), and
 * like them it is bit-for-bit the same for any thread count (the same row blocks). */

static int rises_allowed = 1; /* set_save_rises: benchmarks time the same net without them */

/* Whether forward_rises / backward_rises are the faster path for this layer (see above). */
static int saves_rises(int is_double, int32_t K, int64_t inner) {
    return rises_allowed && !is_double && inner == 1 && tile_width(K, inner) == 8;
}

static int forward_rises_f32(const float *x, const float *c, float *out, float *rises, int64_t outer, int64_t C,
                             int32_t K, float grid_min, float inv_delta, int threads) {
    return forward_any_f32(x, c, out, rises, outer, C, 1, K, grid_min, inv_delta, threads);
}

/* The backward of a float32 dense layer from the rises its forward_rises stored: grad_x and/or the
 * knot-value gradient, with backward_f32's row blocks (so the same bits for any thread count). */
static int backward_rises_f32(const float *x, const float *rises, const float *g, float *gx, float *gc, int64_t outer,
                              int64_t C, int32_t K, float grid_min, float inv_delta, int threads) {
    return backward_any_f32(x, NULL, rises, g, gx, gc, outer, C, 1, K, grid_min, inv_delta, threads);
}

static int check_sizes(long long C, long long K) {
    if (K < 2 || C < 0 || C * K >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "spline kernel: channels * knots must fit in int32 and knots >= 2");
        return -1;
    }
    return 0;
}

/* A saved-rises call (float32, dense) or a ValueError. */
static int check_rises(unsigned long long rises, int is_double, long long inner) {
    if (rises && (is_double || inner != 1)) {
        PyErr_SetString(PyExc_ValueError, "spline kernel: rises are saved for float32 dense layers only");
        return -1;
    }
    return 0;
}

/* forward(x, coeffs, out, outer, channels, inner, knots, grid_min, inv_delta, is_double[, threads[, rises]]) */
static PyObject *py_forward(PyObject *self, PyObject *args) {
    unsigned long long x, coeffs, out, rises = 0;
    long long outer, channels, inner, knots;
    double grid_min, inv_delta;
    int is_double, threads = 1;
    if (!PyArg_ParseTuple(args, "KKKLLLLddp|iK", &x, &coeffs, &out, &outer, &channels, &inner,
                          &knots, &grid_min, &inv_delta, &is_double, &threads, &rises))
        return NULL;
    if (check_sizes(channels, knots) || check_rises(rises, is_double, inner)) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (rises)
        rc = forward_rises_f32((const float *)x, (const float *)coeffs, (float *)out, (float *)rises, outer,
                               channels, (int32_t)knots, (float)grid_min, (float)inv_delta, threads);
    else if (is_double)
        rc = forward_f64((const double *)x, (const double *)coeffs, (double *)out, outer, channels,
                         inner, (int32_t)knots, grid_min, inv_delta, threads);
    else
        rc = forward_f32((const float *)x, (const float *)coeffs, (float *)out, outer, channels,
                         inner, (int32_t)knots, (float)grid_min, (float)inv_delta, threads);
    Py_END_ALLOW_THREADS
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* backward(x, coeffs, grad_out, grad_x, grad_coeffs, outer, channels, inner, knots, grid_min, inv_delta,
 *          is_double[, threads[, rises]]): with `rises` (what forward stored), coeffs is not read. */
static PyObject *py_backward(PyObject *self, PyObject *args) {
    unsigned long long x, coeffs, grad_out, grad_x, grad_coeffs, rises = 0;
    long long outer, channels, inner, knots;
    double grid_min, inv_delta;
    int is_double, threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKKLLLLddp|iK", &x, &coeffs, &grad_out, &grad_x, &grad_coeffs,
                          &outer, &channels, &inner, &knots, &grid_min, &inv_delta, &is_double,
                          &threads, &rises))
        return NULL;
    if (check_sizes(channels, knots) || check_rises(rises, is_double, inner)) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (rises)
        rc = backward_rises_f32((const float *)x, (const float *)rises, (const float *)grad_out, (float *)grad_x,
                                (float *)grad_coeffs, outer, channels, (int32_t)knots, (float)grid_min,
                                (float)inv_delta, threads);
    else if (is_double)
        rc = backward_f64((const double *)x, (const double *)coeffs, (const double *)grad_out,
                          (double *)grad_x, (double *)grad_coeffs, outer, channels, inner,
                          (int32_t)knots, grid_min, inv_delta, threads);
    else
        rc = backward_f32((const float *)x, (const float *)coeffs, (const float *)grad_out,
                          (float *)grad_x, (float *)grad_coeffs, outer, channels, inner,
                          (int32_t)knots, (float)grid_min, (float)inv_delta, threads);
    Py_END_ALLOW_THREADS
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ================================================================================
 * The served map (float64)
 * ================================================================================ */

enum { KIND_IDENTITY = 0, KIND_RELU = 1, KIND_ABS = 2, KIND_GROUPSORT = 3, KIND_PIECEWISE = 4 };

/* served_map._SLACK and _TINY: every computed bound b becomes b * SLACK + TINY (_up). */
static const double SLACK = 1.0 + 0x1p-40;
static const double TINY = 0x1p-1000;

static inline double up(double a) { return a * SLACK + TINY; }

typedef struct {
    int kind;
    int exact;
    int64_t units;
    int64_t block;
    /* piecewise tables (served_map._Activation) */
    int32_t m;            /* number of knots */
    double t0, inv, eps;  /* position p = (h - t0) * inv; trusted when eps away from an integer */
    const double *knots;  /* t (m) */
    const double *anchor_knots; /* (m + 1): t_a, a = max(j - 1, 0) */
    const double *vtab;   /* (units, m + 1): v_{u, a} */
    const double *stab;   /* (units, m + 1): s_{u, j} */
    const double *vmax;   /* (units): max_k |v_{u,k}| */
    const double *lip;    /* (units): Lipschitz bound of unit u */
    const double *quads;  /* (units, m + 1, 4): (v_{u,a}, s_{u,j}, t_a, 0), one 32-byte load per element */
    double knot_max;
    /* the affine layer before the activation, and the activation's constants */
    double A, g, bnorm, maxlip, gamma7;
    double gnorm;         /* 1 + gamma_{units + 6}: the l2 norms' rounding factor (served_map._norms) */
} plan_t;

/* Upper bound of the l2 norm of a row from its sum of squares ss and largest magnitude mx,
 * computed in one pass (any order of summation): served_map._norms, minus the scaling pass.
 *
 * _norms divides the row by its largest magnitude before squaring, so that squares neither
 * underflow nor overflow. When 2^-450 <= mx <= 2^450 that pass is unnecessary: no square
 * overflows (ss <= n 2^900), and ss >= mx^2 >= 2^-900, so the squares that underflow (each off
 * by at most 2^-1075 absolutely) perturb ss by at most n 2^-1075 <= n 2^-175 ss relatively,
 * far inside the margin between gamma_{n+6} and the gamma_{n+1} that the unscaled sum of n
 * rounded squares and one square root need. So sqrt(ss) * (1 + gamma_{n+6}), then _up, bounds
 * the norm. Any other row (zero, tiny, huge, inf, NaN) is done exactly as _norms does it:
 * scaled by mx in a second pass (recompute), NaN for a row holding NaN. */
typedef double (*rescan_fn)(const void *ctx, int64_t i, double scale);

static double row_norm(double ss, double mx, int64_t n, double gnorm, const void *ctx, rescan_fn value) {
    if (n == 0) return TINY;
    if (ss <= DBL_MAX && mx >= 0x1p-450 && mx <= 0x1p450) return up(sqrt(ss) * gnorm);
    if (ss != ss) return NAN;
    if (mx == 0.0) return up(0.0);
    if (!(mx <= DBL_MAX)) return INFINITY;
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double q = value(ctx, i, mx);
        s += q * q;
    }
    return up(mx * (sqrt(s) * gnorm));
}

typedef struct { const double *a; } plain_ctx;
static double plain_scaled(const void *ctx, int64_t i, double scale) {
    return ((const plain_ctx *)ctx)->a[i] / scale;
}

typedef struct { const double *h; const plan_t *p; } terms_ctx;
static double terms_scaled(const void *ctx, int64_t i, double scale) {
    const terms_ctx *t = (const terms_ctx *)ctx;
    double term = t->p->vmax[i] + t->p->lip[i] * (fabs(t->h[i]) + t->p->knot_max);
    return term / scale;
}

/* The exact cell j of h: t_{j-1} <= h < t_j (j in [0, m]), by comparisons, from a guess. */
static int32_t exact_cell(const double *t, int32_t m, double h, int32_t j) {
    if (h != h) return 0;
    if (j < 0) j = 0;
    if (j > m) j = m;
    while (j < m && h >= t[j]) ++j;
    while (j > 0 && h < t[j - 1]) --j;
    return j;
}



#ifdef HAVE_AVX2_PATH
/* The value-and-statistics loop of piecewise_row, 4 elements at a time: one 32-byte load of
 * (v_a, s_j, t_a, 0) per element and a 4x4 transpose replace three emulated gathers (GCC does
 * not emit hardware gathers here, and they are slow on some CPUs anyway). Same arithmetic as the
 * scalar loop: v_a + s_j (h - t_a), one rounding per operation, no FMA. Returns how many leading
 * elements it did (a multiple of 4); stats get their partial sums and maxima. */
__attribute__((target("avx2"))) static int64_t piecewise_values_avx2(const plan_t *P, const double *h,
                                                                     double *out, const int32_t *cell,
                                                                     double *stats) {
    const int64_t n4 = P->units & ~(int64_t)3;
    const int64_t stride = P->m + 1;
    const double *quads = P->quads, *vmax = P->vmax, *lip = P->lip;
    const __m256d kmax = _mm256_set1_pd(P->knot_max);
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d ss = _mm256_setzero_pd(), mx = _mm256_setzero_pd();
    __m256d ts = _mm256_setzero_pd(), tm = _mm256_setzero_pd();
    for (int64_t u = 0; u < n4; u += 4) {
        __m256d q0 = _mm256_loadu_pd(quads + ((u + 0) * stride + cell[u + 0]) * 4);
        __m256d q1 = _mm256_loadu_pd(quads + ((u + 1) * stride + cell[u + 1]) * 4);
        __m256d q2 = _mm256_loadu_pd(quads + ((u + 2) * stride + cell[u + 2]) * 4);
        __m256d q3 = _mm256_loadu_pd(quads + ((u + 3) * stride + cell[u + 3]) * 4);
        __m256d lo01 = _mm256_unpacklo_pd(q0, q1); /* v0 v1 | t0 t1 */
        __m256d hi01 = _mm256_unpackhi_pd(q0, q1); /* s0 s1 | 0 0 */
        __m256d lo23 = _mm256_unpacklo_pd(q2, q3);
        __m256d hi23 = _mm256_unpackhi_pd(q2, q3);
        __m256d v = _mm256_permute2f128_pd(lo01, lo23, 0x20);
        __m256d t = _mm256_permute2f128_pd(lo01, lo23, 0x31);
        __m256d s = _mm256_permute2f128_pd(hi01, hi23, 0x20);
        __m256d hv = _mm256_loadu_pd(h + u);
        __m256d a = _mm256_add_pd(v, _mm256_mul_pd(s, _mm256_sub_pd(hv, t)));
        _mm256_storeu_pd(out + u, a);
        ss = _mm256_add_pd(ss, _mm256_mul_pd(a, a));
        mx = _mm256_max_pd(_mm256_andnot_pd(sign, a), mx); /* NaN is dropped here; ss keeps it */
        __m256d term = _mm256_add_pd(_mm256_loadu_pd(vmax + u),
                                     _mm256_mul_pd(_mm256_loadu_pd(lip + u),
                                                   _mm256_add_pd(_mm256_andnot_pd(sign, hv), kmax)));
        ts = _mm256_add_pd(ts, _mm256_mul_pd(term, term));
        tm = _mm256_max_pd(term, tm);
    }
    double b[4];
    _mm256_storeu_pd(b, ss);
    stats[0] = (b[0] + b[1]) + (b[2] + b[3]);
    _mm256_storeu_pd(b, ts);
    stats[2] = (b[0] + b[1]) + (b[2] + b[3]);
    _mm256_storeu_pd(b, mx);
    stats[1] = fmax(fmax(b[0], b[1]), fmax(b[2], b[3]));
    _mm256_storeu_pd(b, tm);
    stats[3] = fmax(fmax(b[0], b[1]), fmax(b[2], b[3]));
    return n4;
}
#endif

#ifdef HAVE_AVX2_PATH
/* The cell-guess loop of piecewise_row, 4 elements at a time, same arithmetic: max(p, -1/2) maps
 * NaN to -1/2 like the scalar ternary, then min with m - 1/2, j = trunc(q + 1), fraction
 * q - (j - 1), doubtful unless eps <= fraction <= 1 - eps. */
__attribute__((target("avx2"))) static int64_t piecewise_cells_avx2(const plan_t *P, const double *h,
                                                                    int32_t *cell, int64_t *doubtful) {
    const int64_t n4 = P->units & ~(int64_t)3;
    const __m256d t0 = _mm256_set1_pd(P->t0), inv = _mm256_set1_pd(P->inv);
    const __m256d lo = _mm256_set1_pd(-0.5), hi = _mm256_set1_pd((double)P->m - 0.5);
    const __m256d one = _mm256_set1_pd(1.0), eps = _mm256_set1_pd(P->eps), top = _mm256_set1_pd(1.0 - P->eps);
    int64_t bad = 0;
    for (int64_t u = 0; u < n4; u += 4) {
        __m256d p = _mm256_mul_pd(_mm256_sub_pd(_mm256_loadu_pd(h + u), t0), inv);
        __m256d q = _mm256_min_pd(_mm256_max_pd(p, lo), hi); /* max_pd(NaN, lo) = lo */
        __m128i j = _mm256_cvttpd_epi32(_mm256_add_pd(q, one));
        __m256d fr = _mm256_sub_pd(q, _mm256_sub_pd(_mm256_cvtepi32_pd(j), one));
        __m256d ok = _mm256_and_pd(_mm256_cmp_pd(fr, eps, _CMP_GE_OQ), _mm256_cmp_pd(fr, top, _CMP_LE_OQ));
        _mm_storeu_si128((__m128i *)(cell + u), j);
        bad += 4 - __builtin_popcount((unsigned)_mm256_movemask_pd(ok));
    }
    *doubtful += bad;
    return n4;
}
#endif

/* One row of a piecewise-linear activation: cells (vectorised guess, exact fix-ups for the
 * few guesses that cannot be trusted), values v_a + s_j (h - t_a), and the row statistics. */
TARGETS static int64_t piecewise_row(const plan_t *RESTRICT P, const double *RESTRICT h,
                                     double *RESTRICT out, int32_t *RESTRICT cell,
                                     double *RESTRICT stats, int with_bound) {
    const int64_t n = P->units;
    const int32_t m = P->m, stride = m + 1;
    const double t0 = P->t0, inv = P->inv, eps = P->eps, hi = (double)m - 0.5;
    int64_t doubtful = 0;
    if (m == 1) {
        for (int64_t u = 0; u < n; ++u) cell[u] = h[u] >= t0 ? 1 : 0;
    } else {
        int64_t u0 = 0;
#ifdef HAVE_AVX2_PATH
        if (use_avx2) u0 = piecewise_cells_avx2(P, h, cell, &doubtful);
#endif
        for (int64_t u = u0; u < n; ++u) {
            double p = (h[u] - t0) * inv;
            double q = p >= -0.5 ? p : -0.5; /* NaN -> -0.5: cell 0, any cell is right for NaN */
            q = q <= hi ? q : hi;
            /* j = floor(q) + 1 by truncation of q + 1 >= 1/2 (no libm floor: it would stop the
             * vectorisation). If q + 1 rounded up to the next integer, q - (j - 1) < 0 and the
             * element is doubtful: it is placed by comparisons, so the rounding costs nothing. */
            int32_t j = (int32_t)(q + 1.0);
            double fr = q - (double)(j - 1);
            cell[u] = j;
            doubtful += (fr >= eps && fr <= 1.0 - eps) ? 0 : 1;
        }
        if (doubtful) {
            for (int64_t u = 0; u < n; ++u) cell[u] = exact_cell(P->knots, m, h[u], cell[u]);
        }
    }
    const double *RESTRICT vt = P->vtab, *RESTRICT st = P->stab, *RESTRICT at = P->anchor_knots;
    if (!with_bound) {
        int64_t u0 = 0;
#ifdef HAVE_AVX2_PATH
        if (use_avx2 && P->quads) u0 = piecewise_values_avx2(P, h, out, cell, stats); /* stats unused */
#endif
        for (int64_t u = u0; u < n; ++u) {
            int32_t i = (int32_t)u * stride + cell[u];
            out[u] = vt[i] + st[i] * (h[u] - at[cell[u]]);
        }
        return doubtful;
    }
    const double *RESTRICT vmax = P->vmax, *RESTRICT lip = P->lip;
    const double kmax = P->knot_max;
    double ss = 0.0, mx = 0.0, ts = 0.0, tm = 0.0;
    int64_t u0 = 0;
#ifdef HAVE_AVX2_PATH
    if (use_avx2 && P->quads) u0 = piecewise_values_avx2(P, h, out, cell, stats);
    if (u0) {
        ss = stats[0];
        mx = stats[1];
        ts = stats[2];
        tm = stats[3];
    }
#endif
#pragma omp simd reduction(+ : ss, ts) reduction(max : mx, tm)
    for (int64_t u = u0; u < n; ++u) {
        int32_t j = cell[u];
        int32_t i = (int32_t)u * stride + j;
        double hv = h[u];
        double a = vt[i] + st[i] * (hv - at[j]);
        out[u] = a;
        double aa = fabs(a);
        ss += a * a;
        mx = aa > mx ? aa : mx;
        double term = vmax[u] + lip[u] * (fabs(hv) + kmax);
        ts += term * term;
        tm = term > tm ? term : tm;
    }
    stats[0] = ss;
    stats[1] = mx;
    stats[2] = ts;
    stats[3] = tm;
    return doubtful;
}

/* max / min that propagate NaN (numpy.maximum / numpy.minimum) */
static inline double nan_max(double a, double b) { return (a != a || b != b) ? a + b : (a >= b ? a : b); }
static inline double nan_min(double a, double b) { return (a != a || b != b) ? a + b : (a >= b ? b : a); }

#ifdef HAVE_AVX2_PATH
/* ReLU / abs rows 4 at a time (out may be h: each element is read before it is written).
 * ReLU keeps NaN like the scalar (v <= 0 ? 0 : v): the mask "not (v <= 0)" is true for NaN. */
__attribute__((target("avx2"))) static int64_t simple_values_avx2(int kind, const double *h, double *out,
                                                                   int64_t n, double *ss_out, double *mx_out) {
    const int64_t n4 = n & ~(int64_t)3;
    const __m256d zero = _mm256_setzero_pd(), sign = _mm256_set1_pd(-0.0);
    __m256d ss = _mm256_setzero_pd(), mx = _mm256_setzero_pd();
    for (int64_t u = 0; u < n4; u += 4) {
        __m256d v = _mm256_loadu_pd(h + u);
        __m256d a = kind == KIND_RELU ? _mm256_and_pd(v, _mm256_cmp_pd(v, zero, _CMP_NLE_UQ))
                                      : _mm256_andnot_pd(sign, v);
        _mm256_storeu_pd(out + u, a);
        ss = _mm256_add_pd(ss, _mm256_mul_pd(a, a));
        mx = _mm256_max_pd(a, mx); /* a >= 0; NaN dropped here, kept by ss */
    }
    double b[4];
    _mm256_storeu_pd(b, ss);
    *ss_out = (b[0] + b[1]) + (b[2] + b[3]);
    _mm256_storeu_pd(b, mx);
    *mx_out = fmax(fmax(b[0], b[1]), fmax(b[2], b[3]));
    return n4;
}
#endif

TARGETS static void simple_row(const plan_t *RESTRICT P, const double *h, double *out, double *RESTRICT stats,
                               int with_bound) {
    const int64_t n = P->units;
    double ss = 0.0, mx = 0.0;
#ifdef HAVE_AVX2_PATH
    if (use_avx2 && (P->kind == KIND_RELU || P->kind == KIND_ABS)) {
        int64_t u0 = simple_values_avx2(P->kind, h, out, n, &ss, &mx);
        for (int64_t u = u0; u < n; ++u) {
            double v = h[u];
            double a = P->kind == KIND_RELU ? (v <= 0.0 ? 0.0 : v) : fabs(v);
            out[u] = a;
            ss += a * a;
            mx = a > mx ? a : mx;
        }
        stats[0] = ss;
        stats[1] = mx;
        return;
    }
#endif
    if (P->kind == KIND_RELU) {
        if (with_bound) {
#pragma omp simd reduction(+ : ss) reduction(max : mx)
            for (int64_t u = 0; u < n; ++u) {
                double v = h[u];
                double a = v <= 0.0 ? 0.0 : v; /* NaN stays NaN */
                out[u] = a;
                ss += a * a;
                mx = a > mx ? a : mx;
            }
        } else {
            for (int64_t u = 0; u < n; ++u) {
                double v = h[u];
                out[u] = v <= 0.0 ? 0.0 : v;
            }
        }
    } else if (P->kind == KIND_ABS) {
#pragma omp simd reduction(+ : ss) reduction(max : mx)
        for (int64_t u = 0; u < n; ++u) {
            double a = fabs(h[u]);
            out[u] = a;
            ss += a * a;
            mx = a > mx ? a : mx;
        }
    } else { /* GroupSort(2): unit j of a group of 2 * block pairs with unit j + block */
        const int64_t block = P->block;
        for (int64_t g0 = 0; g0 + 2 * block <= n; g0 += 2 * block) {
            for (int64_t j = 0; j < block; ++j) {
                double x1 = h[g0 + j], x2 = h[g0 + j + block];
                double a1 = nan_max(x1, x2), a2 = nan_min(x1, x2);
                out[g0 + j] = a1;
                out[g0 + j + block] = a2;
                ss += a1 * a1 + a2 * a2;
                double m1 = fabs(a1), m2 = fabs(a2);
                mx = m1 > mx ? m1 : mx;
                mx = m2 > mx ? m2 : mx;
            }
        }
    }
    stats[0] = ss;
    stats[1] = mx;
}

/* Rows [r0, r1) of one layer: the activation and the error recursion of ServedMap.evaluate. */
static int served_rows(const plan_t *P, const double *h, double *out, double *err, double *norm,
                       int64_t r0, int64_t r1, int with_bound) {
    const int64_t n = P->units;
    int32_t *cell = NULL;
    if (P->kind == KIND_PIECEWISE) {
        cell = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
        if (!cell) return -1;
    }
    for (int64_t r = r0; r < r1; ++r) {
        const double *hr = h + r * n;
        double *orow = out + r * n;
        double e = 0.0;
        if (with_bound) {
            /* the affine layer: inherited A e, own gamma (A ||a(y)|| + ||b||), ||a(y)|| <= ||a|| + 2e */
            double magnitude = norm[r] + 2.0 * err[r];
            e = up(P->A * err[r] + P->g * (P->A * magnitude + P->bnorm));
        }
        if (P->kind == KIND_IDENTITY) {
            if (with_bound) err[r] = e;
            continue;
        }
        double stats[4] = {0.0, 0.0, 0.0, 0.0};
        if (P->kind == KIND_PIECEWISE)
            piecewise_row(P, hr, orow, cell, stats, with_bound);
        else
            simple_row(P, hr, orow, stats, with_bound);
        if (!with_bound) continue;
        plain_ctx pc = {orow};
        double anorm = row_norm(stats[0], stats[1], n, P->gnorm, &pc, plain_scaled);
        double own = 0.0;
        if (!P->exact) {
            terms_ctx tc = {hr, P};
            double tnorm = row_norm(stats[2], stats[3], n, P->gnorm, &tc, terms_scaled);
            own = P->gamma7 * tnorm;
            own = own + P->gamma7 * P->maxlip * 2.0 * e; /* |h(y)| <= |h(x)| + 2e, over the ball */
        }
        err[r] = up(P->maxlip * e + own);
        norm[r] = anorm;
    }
    free(cell);
    return 0;
}

static void plan_free(PyObject *capsule) {
    void *p = PyCapsule_GetPointer(capsule, "lipspline.served_plan");
    PyMem_Free(p);
}

static PyObject *py_served_plan(PyObject *self, PyObject *args) {
    int kind, exact, m;
    long long units, block;
    double t0, inv, eps, knot_max, A, g, bnorm, maxlip, gamma7, gnorm;
    unsigned long long knots, anchor_knots, vtab, stab, vmax, lip, quads = 0;
    if (!PyArg_ParseTuple(args, "iiLLidddKKKKKKddddddd|K", &kind, &exact, &units, &block, &m, &t0,
                          &inv, &eps, &knots, &anchor_knots, &vtab, &stab, &vmax, &lip, &knot_max,
                          &A, &g, &bnorm, &maxlip, &gamma7, &gnorm, &quads))
        return NULL;
    if (kind < KIND_IDENTITY || kind > KIND_PIECEWISE || units < 0 || block < 1 ||
        (kind == KIND_PIECEWISE && (m < 1 || (long long)(m + 1) * units >= INT32_MAX))) {
        PyErr_SetString(PyExc_ValueError, "served_plan: bad layer description");
        return NULL;
    }
    plan_t *p = (plan_t *)PyMem_Calloc(1, sizeof(plan_t));
    if (!p) return PyErr_NoMemory();
    p->kind = kind;
    p->exact = exact;
    p->units = units;
    p->block = block;
    p->m = m;
    p->t0 = t0;
    p->inv = inv;
    p->eps = eps;
    p->knots = (const double *)knots;
    p->anchor_knots = (const double *)anchor_knots;
    p->vtab = (const double *)vtab;
    p->stab = (const double *)stab;
    p->vmax = (const double *)vmax;
    p->lip = (const double *)lip;
    p->quads = (const double *)quads;
    p->knot_max = knot_max;
    p->A = A;
    p->g = g;
    p->bnorm = bnorm;
    p->maxlip = maxlip;
    p->gamma7 = gamma7;
    p->gnorm = gnorm;
    PyObject *capsule = PyCapsule_New(p, "lipspline.served_plan", plan_free);
    if (!capsule) PyMem_Free(p);
    return capsule;
}

/* A float64 array argument of the served kernels: its buffer must hold at least `count` doubles. The
 * arrays arrive as objects with the buffer protocol (numpy arrays, C-contiguous by "y*" / "w*"), not as
 * integer addresses: `ndarray.ctypes.data` cost 0.9 us per array, 13 arrays per evaluation of a 2-layer
 * model, which was a third of a 1-row served map; the buffer is also checked against the sizes. */
static int short_buffer(const Py_buffer *b, int64_t count, const char *name) {
    if (count < 0 || b->len < (Py_ssize_t)count * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "served kernel: %s holds %zd bytes, needs %lld doubles", name, b->len,
                     (long long)count);
        return 1;
    }
    return 0;
}

/* served_step(plan, h, out, rows, err, norm, with_bound[, threads]): h, out (rows x units; may be the same
 * array), err and norm (rows) are C-contiguous float64 arrays. */
static PyObject *py_served_step(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer hb, ob, eb, nb;
    long long rows;
    int with_bound, threads = 1;
    if (!PyArg_ParseTuple(args, "Oy*w*Lw*w*p|i", &capsule, &hb, &ob, &rows, &eb, &nb, &with_bound, &threads))
        return NULL;
    PyObject *result = NULL;
    const plan_t *P = (const plan_t *)PyCapsule_GetPointer(capsule, "lipspline.served_plan");
    const int64_t width = P && P->kind != KIND_IDENTITY ? P->units : 0;
    if (P && !short_buffer(&hb, rows * width, "h") && !short_buffer(&ob, rows * width, "out") &&
        !short_buffer(&eb, rows, "err") && !short_buffer(&nb, rows, "norm")) {
        const double *h = (const double *)hb.buf;
        double *out = (double *)ob.buf, *err = (double *)eb.buf, *norm = (double *)nb.buf;
        int failed = 0;
        Py_BEGIN_ALLOW_THREADS
        int64_t elems = rows * (P->units > 0 ? P->units : 1);
        int parts = (threads > 1 && elems >= PARALLEL_MIN_ELEMS && rows > 1) ? threads : 1;
        if (parts > rows) parts = (int)max64(1, rows);
        _Pragma("omp parallel for schedule(static) num_threads(parts) if (parts > 1) reduction(|:failed)")
        for (int part = 0; part < parts; ++part) {
            int64_t r0 = split_at(rows, part, parts), r1 = split_at(rows, part + 1, parts);
            if (served_rows(P, h, out, err, norm, r0, r1, with_bound)) failed = 1;
        }
        Py_END_ALLOW_THREADS
        if (failed) PyErr_NoMemory();
        else result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&hb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&nb);
    return result;
}

/* d = x - mean (float64, row by row), and with the bound: ||d|| and the input's error
 * u_in ||d|| (1 + 4u), rounded up (ServedMap.evaluate's first step). */
TARGETS static void input_rows(const double *RESTRICT x, const double *RESTRICT mean, double *RESTRICT d,
                               double *RESTRICT err, double *RESTRICT norm, int64_t r0, int64_t r1,
                               int64_t n, double unit_in, double four_u, double gnorm, int with_bound) {
    for (int64_t r = r0; r < r1; ++r) {
        const double *RESTRICT xr = x + r * n;
        double *RESTRICT dr = d + r * n;
        if (!with_bound) {
            for (int64_t i = 0; i < n; ++i) dr[i] = xr[i] - mean[i];
            continue;
        }
        double ss = 0.0, mx = 0.0;
#pragma omp simd reduction(+ : ss) reduction(max : mx)
        for (int64_t i = 0; i < n; ++i) {
            double v = xr[i] - mean[i];
            dr[i] = v;
            double av = fabs(v);
            ss += v * v;
            mx = av > mx ? av : mx;
        }
        plain_ctx pc = {dr};
        double dn = row_norm(ss, mx, n, gnorm, &pc, plain_scaled);
        norm[r] = dn;
        err[r] = up(unit_in * dn * (1.0 + four_u));
    }
}

/* served_input(x, mean, d, rows, n, err, norm, unit_in, four_u, gnorm, with_bound[, threads]): x and d
 * (rows x n), mean (n), err and norm (rows) are C-contiguous float64 arrays. */
static PyObject *py_served_input(PyObject *self, PyObject *args) {
    Py_buffer xb, mb, db, eb, nb;
    long long rows, n;
    double unit_in, four_u, gnorm;
    int with_bound, threads = 1;
    if (!PyArg_ParseTuple(args, "y*y*w*LLw*w*dddp|i", &xb, &mb, &db, &rows, &n, &eb, &nb, &unit_in, &four_u,
                          &gnorm, &with_bound, &threads))
        return NULL;
    PyObject *result = NULL;
    if (!short_buffer(&xb, rows * n, "x") && !short_buffer(&mb, n, "mean") && !short_buffer(&db, rows * n, "d") &&
        !short_buffer(&eb, rows, "err") && !short_buffer(&nb, rows, "norm")) {
        const double *x = (const double *)xb.buf, *mean = (const double *)mb.buf;
        double *d = (double *)db.buf, *err = (double *)eb.buf, *norm = (double *)nb.buf;
        Py_BEGIN_ALLOW_THREADS
        int64_t elems = rows * (n > 0 ? n : 1);
        int parts = (threads > 1 && elems >= PARALLEL_MIN_ELEMS && rows > 1) ? threads : 1;
        if (parts > rows) parts = (int)max64(1, rows);
        _Pragma("omp parallel for schedule(static) num_threads(parts) if (parts > 1)")
        for (int part = 0; part < parts; ++part) {
            int64_t r0 = split_at(rows, part, parts), r1 = split_at(rows, part + 1, parts);
            input_rows(x, mean, d, err, norm, r0, r1, n, unit_in, four_u, gnorm, with_bound);
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&db);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&nb);
    return result;
}

/* ---- the spline-norm penalty ---------------------------------------------------------------------
 * sum_n sum_j |y_nj|, y_nj = sum_t c[n, rows[j, t]] vals[j, t]: every column of the functionals matrix M
 * of splines.bv2_functionals has at most `taps` non-zeros (a second difference 3, a point value 2), so
 * c @ M is O(N J taps) instead of a dense matmul. With `grad`, also writes grad = scale sign(y) M^T
 * (sign 0 at 0, autograd's subgradient of abs). Accumulated in double, returned as a double.
 *
 * The leading columns whose taps are rows j, j+1, j+2 (the second differences: a band) are computed with
 * contiguous loads across j, which vectorise, instead of one column at a time through the index table
 * (that loop ran at 24 us per 256-spline layer per call, four calls per training step). Each y is the same
 * expression as the one-column loop, so the signs, and hence the gradient, are bit for bit the same; the
 * gradient of a knot still receives its column terms in column order. Only the order of the final sum of
 * |y| differs (per column over the splines, then over the columns). */
enum { BAND_V0, BAND_V1, BAND_V2, BAND_Y, BAND_SUM, BAND_W0, BAND_W1, BAND_W2, BAND_SIGN, BAND_ARRAYS };

/* The number of leading columns of a 3-tap stencil that form a band (taps at rows j, j+1, j+2). */
static int32_t band_columns(int32_t J, int32_t taps, const int32_t *rows) {
    if (taps != 3) return 0;
    int32_t j = 0;
    while (j < J && rows[3 * j] == j && rows[3 * j + 1] == j + 1 && rows[3 * j + 2] == j + 2) ++j;
    return j;
}

/* The band's arrays (one block per call, per thread): each holds `stride` slots of 8 bytes and starts two
 * slots in, so index -2 and -1, band and band + 1 are zeros and the gradient loop reads its neighbours
 * without branches. V: the column values (double); Y: the column values of one spline; SUM: sum of |y| per
 * column; W: scale * V rounded once to the coefficients' type; SIGN: sign(y) in that type. */
typedef struct { double *v[3], *y, *sum; void *w[3], *sign; } band_t;

#define DEFINE_NORM_KERNEL(T, S)                                                         \
/* y[j] of one spline and sum[j] += |y[j]| over the band: contiguous loads across columns. */ \
TARGETS static void band_values_##S(const T *RESTRICT cn, const double *RESTRICT v0,    \
                                    const double *RESTRICT v1, const double *RESTRICT v2, \
                                    double *RESTRICT y, double *RESTRICT sum, int32_t band) { \
    for (int32_t j = 0; j < band; ++j) {                                                 \
        double value = ((double)cn[j] * v0[j] + (double)cn[j + 1] * v1[j]) + (double)cn[j + 2] * v2[j]; \
        y[j] = value;                                                                    \
        sum[j] += fabs(value);                                                           \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* gn[k] += the band's terms of columns k - 2, k - 1, k, in that (column) order. A term is sign(y) times \
 * w = (T)(scale v), which is exactly the one-column loop's (T)(scale sign(y) v): rounding is symmetric. \
 * A zero sign adds a signed zero, which changes no sum. */                              \
TARGETS static void band_grad_##S(T *RESTRICT gn, const T *RESTRICT w0, const T *RESTRICT w1, \
                                  const T *RESTRICT w2, const double *RESTRICT y,        \
                                  T *RESTRICT sign, int32_t band) {                      \
    for (int32_t j = 0; j < band; ++j) sign[j] = (T)((y[j] > 0.0) - (y[j] < 0.0));      \
    for (int32_t k = 0; k < band + 2; ++k)                                               \
        gn[k] = ((gn[k] + sign[k - 2] * w2[k - 2]) + sign[k - 1] * w1[k - 1]) + sign[k] * w0[k]; \
}                                                                                        \
                                                                                         \
static double norm_terms_##S(const T *c, T *grad, int64_t N, int32_t K, int32_t J, int32_t taps, \
                             const int32_t *rows, const double *vals, double scale, const band_t *B) { \
    double total = 0.0;                                                                  \
    const int32_t band = B ? band_columns(J, taps, rows) : 0;                            \
    T *w0 = B ? (T *)B->w[0] : NULL, *w1 = B ? (T *)B->w[1] : NULL, *w2 = B ? (T *)B->w[2] : NULL; \
    for (int32_t j = 0; j < band; ++j) {                                                 \
        for (int t = 0; t < 3; ++t) B->v[t][j] = vals[3 * j + t];                        \
        w0[j] = (T)(scale * vals[3 * j]), w1[j] = (T)(scale * vals[3 * j + 1]), w2[j] = (T)(scale * vals[3 * j + 2]); \
    }                                                                                    \
    if (grad) memset(grad, 0, sizeof(T) * (size_t)(N * K));                              \
    for (int64_t n = 0; n < N; ++n) {                                                    \
        const T *cn = c + n * K;                                                         \
        if (band) {                                                                      \
            band_values_##S(cn, B->v[0], B->v[1], B->v[2], B->y, B->sum, band);          \
            if (grad) band_grad_##S(grad + n * K, w0, w1, w2, B->y, (T *)B->sign, band); \
        }                                                                                \
        for (int32_t j = band; j < J; ++j) {                                             \
            const int32_t *rj = rows + (int64_t)j * taps;                                \
            const double *vj = vals + (int64_t)j * taps;                                 \
            double value = 0.0;                                                          \
            if (taps == 3) /* every column of bv2_functionals: unrolled */                \
                value = ((double)cn[rj[0]] * vj[0] + (double)cn[rj[1]] * vj[1]) + (double)cn[rj[2]] * vj[2]; \
            else                                                                         \
                for (int32_t t = 0; t < taps; ++t) value += (double)cn[rj[t]] * vj[t];   \
            total += fabs(value);                                                        \
            if (grad) {                                                                  \
                double sgn = (value > 0.0) - (value < 0.0);                              \
                if (sgn != 0.0)                                                          \
                    for (int32_t t = 0; t < taps; ++t) grad[n * K + rj[t]] += (T)(scale * sgn * vj[t]); \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    for (int32_t j = 0; j < band; ++j) total += B->sum[j];                               \
    return total;                                                                        \
}

DEFINE_NORM_KERNEL(float, f32)
DEFINE_NORM_KERNEL(double, f64)

/* sum |c @ M| over the N splines of c (N x K), M's J columns given as `taps` (row, value) pairs; with
 * grad (N x K), also grad := scale * sign(c @ M) @ M^T. Sizes are the caller's to check (py_norm_terms). */
static double norm_terms(const void *c, void *grad, int64_t N, int32_t K, int32_t J, int32_t taps,
                         const int32_t *rows, const double *vals, int is_double, double scale) {
    const size_t stride = (size_t)J + 4; /* see band_t */
    double *block = (double *)workspace(WS_NORM, sizeof(double) * stride * BAND_ARRAYS, 1);
    band_t arrays, *band_arrays = block ? &arrays : NULL; /* no memory: every column through the index table */
    if (block) {
        for (int t = 0; t < 3; ++t) {
            arrays.v[t] = block + (BAND_V0 + t) * stride + 2;
            arrays.w[t] = block + (BAND_W0 + t) * stride + 2; /* 8-byte slots hold a float or a double */
        }
        arrays.y = block + BAND_Y * stride + 2;
        arrays.sum = block + BAND_SUM * stride + 2;
        arrays.sign = block + BAND_SIGN * stride + 2;
    }
    if (is_double)
        return norm_terms_f64((const double *)c, (double *)grad, N, K, J, taps, rows, vals, scale, band_arrays);
    return norm_terms_f32((const float *)c, (float *)grad, N, K, J, taps, rows, vals, scale, band_arrays);
}

/* norm_terms(c, grad or 0, N, K, J, taps, rows, vals, is_double, scale) -> sum of |c @ M| (with grad too). */
static PyObject *py_norm_terms(PyObject *self, PyObject *args) {
    unsigned long long c, grad, rows, vals;
    long long N, K, J, taps;
    int is_double;
    double scale;
    if (!PyArg_ParseTuple(args, "KKLLLLKKpd", &c, &grad, &N, &K, &J, &taps, &rows, &vals, &is_double, &scale))
        return NULL;
    if (check_sizes(N, K)) return NULL;
    if (J < 0 || J > K || taps < 1 || taps > K) {
        PyErr_SetString(PyExc_ValueError, "norm_terms: need 0 <= columns <= knots and 1 <= taps <= knots");
        return NULL;
    }
    double total;
    Py_BEGIN_ALLOW_THREADS
    total = norm_terms((const void *)c, (void *)grad, N, (int32_t)K, (int32_t)J, (int32_t)taps,
                       (const int32_t *)rows, (const double *)vals, is_double, scale);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(total);
}

/* saves_rises(is_double, knots, inner) -> bool: whether a training forward should store the rises. */
static PyObject *py_saves_rises(PyObject *self, PyObject *args) {
    int is_double;
    long long knots, inner;
    if (!PyArg_ParseTuple(args, "pLL", &is_double, &knots, &inner)) return NULL;
    return PyBool_FromLong(knots >= 2 && knots < INT32_MAX && saves_rises(is_double, (int32_t)knots, inner));
}

/* set_save_rises(on) -> previous: whether saves_rises may say yes (benchmarks time both paths). */
static PyObject *py_set_save_rises(PyObject *self, PyObject *args) {
    int on;
    if (!PyArg_ParseTuple(args, "p", &on)) return NULL;
    int previous = rises_allowed;
    rises_allowed = on;
    return PyBool_FromLong(previous);
}

/* set_tile_cap(width) -> (previous cap, widths this CPU has): float32 dense tiles at most `width` wide. */
static PyObject *py_set_tile_cap(PyObject *self, PyObject *args) {
    int width;
    if (!PyArg_ParseTuple(args, "i", &width)) return NULL;
    int previous = tile_cap;
    tile_cap = width;
    return Py_BuildValue("(i(ii))", previous, use_avx512 ? 16 : 0, use_avx2 ? 8 : 0);
}

static PyMethodDef methods[] = {
    {"norm_terms", py_norm_terms, METH_VARARGS, "The spline-norm penalty sum |c @ M|, or its gradient."},
    {"set_tile_cap", py_set_tile_cap, METH_VARARGS, "Cap the width of the float32 dense tiles (16, 8 or 0)."},
    {"forward", py_forward, METH_VARARGS, "Evaluate a bank of linear splines."},
    {"saves_rises", py_saves_rises, METH_VARARGS, "Whether a training forward should store each cell's rise."},
    {"set_save_rises", py_set_save_rises, METH_VARARGS, "Allow (True) or forbid saved rises; returns the previous."},
    {"backward", py_backward, METH_VARARGS, "Gradients of a bank of linear splines."},
    {"served_plan", py_served_plan, METH_VARARGS, "Freeze one served-map layer's description."},
    {"served_step", py_served_step, METH_VARARGS, "One served-map activation pass with its rounding bound."},
    {"served_input", py_served_input, METH_VARARGS, "The served map's input differences with their bound."},
    {NULL, NULL, 0, NULL},
};

/* The training kernels as C entry points, for the optional C++ autograd nodes (lipspline/csrc): a
 * node written in Python runs the interpreter on every training step, and in a step that interpreter
 * is cold (MKL and the autograd engine have evicted it), so those few lines cost about as much as the
 * kernel itself. The C++ nodes take this table from the capsule `_C_API` (csrc/kernel_api.h). */
static const lipspline_kernel_api kernel_api = {LIPSPLINE_KERNEL_API_VERSION, forward_f32, forward_f64,
                                                backward_f32, backward_f64, norm_terms, saves_rises,
                                                forward_rises_f32, backward_rises_f32};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spline_kernels",
                                    "Fused CPU kernels for linear-spline activations and the served map.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__spline_kernels(void) {
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
    use_avx512 = __builtin_cpu_supports("avx512f");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m) {
        PyModule_AddIntConstant(m, "GRAD_CHUNKS", GRAD_CHUNKS);
        PyModule_AddIntConstant(m, "GRAD_BLOCK_ELEMS", GRAD_BLOCK_ELEMS);
        PyModule_AddIntConstant(m, "API_VERSION", 5);
        PyModule_AddIntConstant(m, "KERNEL_API_VERSION", LIPSPLINE_KERNEL_API_VERSION);
        PyObject *api = PyCapsule_New((void *)&kernel_api, "lipspline._spline_kernels._C_API", NULL);
        if (!api || PyModule_AddObject(m, "_C_API", api) < 0) {
            Py_XDECREF(api);
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
