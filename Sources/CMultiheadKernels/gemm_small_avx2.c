/* mh_f32_gemm_small_avx2: the direct GEMM of small products (contract in CMultiheadKernels.h). */
#include "gemm_small_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MH_TARGET __attribute__((target("avx2,fma")))
#define MH_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

enum { W = 8 };

/* Lanes 0 ..< count (clamped to 0...8) set. */
MH_INLINE __m256i mh_small_mask(int64_t count) {
    const int n = count <= 0 ? 0 : count >= W ? W : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/*
 * One register tile: rows (1...R) x cols (1...nv*8) of C, B's rows contiguous. A short tile
 * repeats its last row of A (those sums are dropped); masked loads (vmaskmovps) read nothing
 * past column cols; partial vectors are stored through a local tile (vmaskmovps stores are
 * slow on AMD).
 */
MH_INLINE void mh_small_tile(const int nv, const int R, int64_t rows, int64_t cols, int64_t k,
                             const float *a, int64_t rs_a, int64_t cs_a, const float *b, int64_t rs_b,
                             float *c, int64_t rs_c, int64_t cs_c, const float *bias,
                             const mh_f32_microkernel_args *args) {
    const __m256i mask[2] = {mh_small_mask(cols), mh_small_mask(cols - W)};
    const float *ar[MH_GEMM_SMALL_MAX_ROWS];
    __m256 acc[MH_GEMM_SMALL_MAX_ROWS][2];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        ar[r] = a + (r < rows ? r : rows - 1) * rs_a;
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_maskload_ps(b, mask[0]);
        const __m256 b1 = nv == 2 ? _mm256_maskload_ps(b + W, mask[1]) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
            const __m256 x = _mm256_broadcast_ss(ar[r]);
            ar[r] += cs_a;
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
        b += rs_b;
    }

    const uint32_t flags = args->flags;
    if (flags & MH_MICROKERNEL_EPILOGUE) {
        if (bias) {
#pragma clang loop unroll(full)
            for (int v = 0; v < nv; v++) {
                const __m256 bv = _mm256_maskload_ps(bias + v * W, mask[v]);
#pragma clang loop unroll(full)
                for (int r = 0; r < R; r++) acc[r][v] = _mm256_add_ps(acc[r][v], bv);
            }
        }
        const __m256 scale = _mm256_set1_ps(args->scale);
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++)
#pragma clang loop unroll(full)
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_mul_ps(acc[r][v], scale);
    }
    const int accumulate = (flags & MH_MICROKERNEL_EPILOGUE) && (flags & MH_MICROKERNEL_ACCUMULATE);
    if (cs_c != 1 || cols < nv * W) {
        float tile[MH_GEMM_SMALL_MAX_ROWS * 2 * W] __attribute__((aligned(32)));
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++)
#pragma clang loop unroll(full)
            for (int v = 0; v < nv; v++) _mm256_store_ps(tile + (r * 2 + v) * W, acc[r][v]);
        mh_gemm_small_store_strided(tile, 2 * W, rows, cols, c, rs_c, cs_c, accumulate);
        return;
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        if (r >= rows) break;
#pragma clang loop unroll(full)
        for (int v = 0; v < nv; v++) {
            float *out = c + r * rs_c + v * W;
            __m256 x = acc[r][v];
            if (accumulate) x = _mm256_add_ps(_mm256_loadu_ps(out), x);
            _mm256_storeu_ps(out, x);
        }
    }
}

/*
 * The vector path (B's rows contiguous; m, n >= 1): column blocks of up to 2 vectors, each
 * swept by row tiles of 8 accumulators (4 rows x 2 vectors, or 8 rows x 1 vector).
 */
MH_INLINE void mh_small_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a,
                             int64_t cs_a, const float *b, int64_t rs_b, float *c, int64_t rs_c,
                             int64_t cs_c, const mh_f32_microkernel_args *args) {
    for (int64_t j0 = 0; j0 < n; j0 += 2 * W) {
        const int64_t cols = n - j0 < 2 * W ? n - j0 : 2 * W;
        const float *bias = args->bias ? args->bias + j0 : 0;
        for (int64_t i0 = 0; i0 < m;) {
            const int64_t left = m - i0;
            const float *ai = a + i0 * rs_a;
            float *ci = c + i0 * rs_c + j0 * cs_c;
            if (cols > W) {
                const int64_t rows = left < 4 ? left : 4;
                mh_small_tile(2, 4, rows, cols, k, ai, rs_a, cs_a, b + j0, rs_b, ci, rs_c, cs_c, bias, args);
                i0 += rows;
            } else if (left >= 8) {
                mh_small_tile(1, 8, 8, cols, k, ai, rs_a, cs_a, b + j0, rs_b, ci, rs_c, cs_c, bias, args);
                i0 += 8;
            } else {
                const int64_t rows = left < 4 ? left : 4;
                mh_small_tile(1, 4, rows, cols, k, ai, rs_a, cs_a, b + j0, rs_b, ci, rs_c, cs_c, bias, args);
                i0 += rows;
            }
        }
    }
}

/*
 * B with strided columns (K^T): copied row-major to the stack when small enough, so that the
 * vector path runs; else the scalar path.
 */
__attribute__((noinline, target("avx2,fma"))) static void
mh_small_strided_b(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                   const float *b, int64_t rs_b, int64_t cs_b, float *c, int64_t rs_c, int64_t cs_c,
                   const mh_f32_microkernel_args *args) {
    if (k * n > MH_F32_GEMM_SMALL_COPY) {
        mh_gemm_small_scalar(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, rs_c, cs_c, args);
        return;
    }
    float copy[MH_F32_GEMM_SMALL_COPY] __attribute__((aligned(64)));
    mh_gemm_small_copy_b(k, n, b, rs_b, cs_b, copy);
    mh_small_rows(m, n, k, a, rs_a, cs_a, copy, n, c, rs_c, cs_c, args);
}

MH_TARGET
void mh_f32_gemm_small_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a,
                            int64_t cs_a, const float *b, int64_t rs_b, int64_t cs_b, float *c,
                            int64_t rs_c, int64_t cs_c, const mh_f32_microkernel_args *args) {
    if (m <= 0 || n <= 0) return;
    if (cs_b != 1) {
        mh_small_strided_b(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, rs_c, cs_c, args);
        return;
    }
    mh_small_rows(m, n, k, a, rs_a, cs_a, b, rs_b, c, rs_c, cs_c, args);
}

#endif
