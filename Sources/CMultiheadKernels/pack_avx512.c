/* AVX-512 packing kernels for 16-wide panels (contract in CMultiheadKernels.h). */
#include "pack_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MH_TARGET_AVX512 __attribute__((target("avx512f,fma")))
#define MH_INLINE_AVX512 static inline __attribute__((always_inline, target("avx512f,fma")))

/* In-register transpose: r[i] lane j -> r[j] lane i. */
MH_INLINE_AVX512 void mh_transpose16x16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + c], 128-bit lane L: column 4L + c of rows 4g..4g+3. */
#pragma clang loop unroll(full)
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma clang loop unroll(full)
    for (int c = 0; c < 4; c++) {
        const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        const __m512 b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        const __m512 d = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(a, d, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(a, d, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(b, e, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(b, e, 0xDD);
    }
}

MH_TARGET_AVX512
void mh_pack_transposed_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                               float *dst) {
    if (w != 16) {
        mh_pack_transposed_scalar(src, ld, n, kc, w, dst);
        return;
    }
    for (int64_t p0 = 0; p0 < kc; p0 += 16) {
        const int64_t columns = kc - p0 < 16 ? kc - p0 : 16;
        const __mmask16 k = (__mmask16)((1u << columns) - 1u);
        __m512 r[16];
#pragma clang loop unroll(full)
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? _mm512_maskz_loadu_ps(k, src + i * ld + p0) : _mm512_setzero_ps();
        mh_transpose16x16(r);
        /* Unrolled with a guard: a variable-count loop over r[] would spill it to the stack. */
#pragma clang loop unroll(full)
        for (int c = 0; c < 16; c++)
            if (c < columns) _mm512_storeu_ps(dst + (p0 + c) * 16, r[c]);
    }
}

MH_TARGET_AVX512
void mh_pack_copied_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                           float *dst) {
    if (w != 16) {
        mh_pack_copied_scalar(src, ld, n, kc, w, dst);
        return;
    }
    const __mmask16 k = (__mmask16)((1u << n) - 1u);
    for (int64_t p = 0; p < kc; p++) _mm512_storeu_ps(dst + p * 16, _mm512_maskz_loadu_ps(k, src + p * ld));
}

#endif
