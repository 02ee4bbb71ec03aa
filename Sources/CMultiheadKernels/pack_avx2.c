/* AVX2 packing kernels for 16- and 6-wide panels (contract in CMultiheadKernels.h). */
#include "pack_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MH_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MH_INLINE_AVX2 static inline __attribute__((always_inline, target("avx2,fma")))

/* In-register transpose: r[i] lane j -> r[j] lane i. */
MH_INLINE_AVX2 void mh_transpose8x8(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma clang loop unroll(full)
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma clang loop unroll(full)
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* Lanes [0, count) set. */
MH_INLINE_AVX2 __m256i mh_lanes_below(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Loads rows [row0, row0 + 8) ∩ [0, n) of the 8 (or `columns` < 8) source columns at p0 and
 * transposes them: r[c] then holds column p0 + c of those rows. */
MH_INLINE_AVX2 void mh_load_transposed8(const float *src, int64_t ld, int64_t n, int64_t row0,
                                        int64_t p0, int64_t columns, __m256 r[8]) {
    const __m256i k = mh_lanes_below(columns);
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        if (row0 + i >= n) r[i] = _mm256_setzero_ps();
        else if (columns == 8) r[i] = _mm256_loadu_ps(src + (row0 + i) * ld + p0);
        else r[i] = _mm256_maskload_ps(src + (row0 + i) * ld + p0, k);
    }
    mh_transpose8x8(r);
}

MH_TARGET_AVX2
void mh_pack_transposed_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                             float *dst) {
    if (w != 16 && w != 6) {
        mh_pack_transposed_scalar(src, ld, n, kc, w, dst);
        return;
    }
    /* Guarded, fully unrolled stores keep r[] in registers (a variable-count loop spills it). */
    for (int64_t p0 = 0; p0 < kc; p0 += 8) {
        const int64_t columns = kc - p0 < 8 ? kc - p0 : 8;
        __m256 r[8];
        if (w == 16) {
            mh_load_transposed8(src, ld, n, 0, p0, columns, r);
#pragma clang loop unroll(full)
            for (int c = 0; c < 8; c++)
                if (c < columns) _mm256_storeu_ps(dst + (p0 + c) * 16, r[c]);
            mh_load_transposed8(src, ld, n, 8, p0, columns, r);
#pragma clang loop unroll(full)
            for (int c = 0; c < 8; c++)
                if (c < columns) _mm256_storeu_ps(dst + (p0 + c) * 16 + 8, r[c]);
        } else {
            /* 6 of 8 lanes per column: each full store spills 2 zeros into the next column,
             * which that column's store then overwrites; only the last column is cut to 6
             * (maskstore would do, but it is microcoded and slow on AMD). */
            mh_load_transposed8(src, ld, n, 0, p0, columns, r);
#pragma clang loop unroll(full)
            for (int c = 0; c < 8; c++) {
                if (c >= columns) continue;
                float *out = dst + (p0 + c) * 6;
                if (p0 + c + 1 < kc) {
                    _mm256_storeu_ps(out, r[c]);
                } else {
                    _mm_storeu_ps(out, _mm256_castps256_ps128(r[c]));
                    _mm_storel_pi((__m64 *)(out + 4), _mm256_extractf128_ps(r[c], 1));
                }
            }
        }
    }
}

MH_TARGET_AVX2
void mh_pack_copied_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                         float *dst) {
    if (w != 16) {
        mh_pack_copied_scalar(src, ld, n, kc, w, dst);
        return;
    }
    const __m256i k0 = mh_lanes_below(n), k1 = mh_lanes_below(n - 8);
    for (int64_t p = 0; p < kc; p++) {
        _mm256_storeu_ps(dst + p * 16, _mm256_maskload_ps(src + p * ld, k0));
        _mm256_storeu_ps(dst + p * 16 + 8, _mm256_maskload_ps(src + p * ld + 8, k1));
    }
}

#endif
