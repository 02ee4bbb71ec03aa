/* Internal helpers shared by the direct small-GEMM variants (not part of the module's API). */
#ifndef MH_GEMM_SMALL_COMMON_H
#define MH_GEMM_SMALL_COMMON_H

#include "CMultiheadKernels.h"

/* The epilogue is specified operation by operation; an fma would change its bits. */
#pragma STDC FP_CONTRACT OFF

/* The most rows of A in one register tile of the vector paths. */
enum { MH_GEMM_SMALL_MAX_ROWS = 8 };

/*
 * Writes rows x cols (<= 32) finished values of a local tile (epilogue applied but for the
 * accumulation) to c with any strides: c(i, j) = c(i, j) + v when accumulating, else v.
 */
static inline __attribute__((always_inline)) void
mh_gemm_small_store_strided(const float *tile, int64_t tile_rs, int64_t rows, int64_t cols,
                            float *c, int64_t rs_c, int64_t cs_c, int accumulate) {
    for (int64_t i = 0; i < rows; i++) {
        const float *t = tile + i * tile_rs;
        float *out = c + i * rs_c;
        if (accumulate) {
            for (int64_t j = 0; j < cols; j++) out[j * cs_c] = out[j * cs_c] + t[j];
        } else {
            for (int64_t j = 0; j < cols; j++) out[j * cs_c] = t[j];
        }
    }
}

/*
 * The stack copy of a B with strided columns (K^T), k*n <= MH_F32_GEMM_SMALL_COPY, so that the
 * vector path runs: dst[p*n + j] = B(p, j) = b[p*rs_b + j*cs_b], reading B's contiguous
 * columns when rs_b == 1.
 */
static inline __attribute__((always_inline)) void
mh_gemm_small_copy_b(int64_t k, int64_t n, const float *b, int64_t rs_b, int64_t cs_b, float *dst) {
    if (rs_b == 1) {
        for (int64_t j = 0; j < n; j++) {
            const float *column = b + j * cs_b;
            for (int64_t p = 0; p < k; p++) dst[p * n + j] = column[p];
        }
    } else {
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++) dst[p * n + j] = b[p * rs_b + j * cs_b];
    }
}

/*
 * The contract's epilogue for one element: v = S; v = v + bias[j]; v = v * scale;
 * v = c(i, j) + v; written to *out (the raw sum without MH_MICROKERNEL_EPILOGUE).
 */
static inline __attribute__((always_inline)) void
mh_gemm_small_store1(float v, float *out, const float *bias_j, const mh_f32_microkernel_args *args) {
    if (args->flags & MH_MICROKERNEL_EPILOGUE) {
        if (bias_j) v = v + *bias_j;
        v = v * args->scale;
        if (args->flags & MH_MICROKERNEL_ACCUMULATE) v = *out + v;
    }
    *out = v;
}

/*
 * The scalar path (B's columns strided and k*n too large for the stack copy): one fma chain
 * per element, four
 * columns at a time for four independent chains. Inlined into each variant, so that
 * __builtin_fmaf becomes that variant's fma instruction.
 */
static inline __attribute__((always_inline)) void
mh_gemm_small_scalar(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                     const float *b, int64_t rs_b, int64_t cs_b, float *c, int64_t rs_c,
                     int64_t cs_c, const mh_f32_microkernel_args *args) {
    enum { W = 4 };
    for (int64_t j0 = 0; j0 < n; j0 += W) {
        const int64_t cols = n - j0 < W ? n - j0 : W;
        const float *bj[W];
        for (int r = 0; r < W; r++) bj[r] = b + (j0 + (r < cols ? r : cols - 1)) * cs_b;
        for (int64_t i = 0; i < m; i++) {
            const float *ai = a + i * rs_a;
            float s[W] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t p = 0; p < k; p++) {
                const float x = ai[p * cs_a];
                for (int r = 0; r < W; r++) s[r] = __builtin_fmaf(x, bj[r][p * rs_b], s[r]);
            }
            float *ci = c + i * rs_c + j0 * cs_c;
            for (int r = 0; r < cols; r++)
                mh_gemm_small_store1(s[r], ci + r * cs_c, args->bias ? args->bias + j0 + r : 0, args);
        }
    }
}

#endif
