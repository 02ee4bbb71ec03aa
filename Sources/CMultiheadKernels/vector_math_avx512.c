/* AVX-512 vector exp, row max and the softmax step exp(x - m) with its sum. */
#include "vector_math_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#define MH_TARGET_AVX512 __attribute__((target("avx512f,fma")))
#define MH_INLINE_AVX512 static inline __attribute__((always_inline, target("avx512f,fma")))

/* exp of 16 lanes; the step list is the one documented in CMultiheadKernels.h. */
MH_INLINE_AVX512 __m512 mh_exp16(__m512 x) {
    /* max/min return their second operand when either is NaN: a NaN x stays NaN to the end. */
    const __m512 xc = _mm512_min_ps(_mm512_set1_ps(MH_EXP_HI), _mm512_max_ps(_mm512_set1_ps(MH_EXP_LO), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(MH_EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MH_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MH_EXP_LN2_LO), r);
    __m512 y = _mm512_set1_ps(MH_EXP_P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(MH_EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(MH_EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(MH_EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(MH_EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(MH_EXP_P5));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n); /* y * 2^n, one rounding: subnormals come out right */
}

MH_INLINE_AVX512 __mmask16 mh_tail_mask(int64_t remaining) {
    return (__mmask16)((1u << remaining) - 1u);
}

MH_TARGET_AVX512
void mh_vexp_avx512(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, mh_exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 k = mh_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, mh_exp16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

MH_TARGET_AVX512
float mh_vmax_avx512(const float *x, int64_t n) {
    const __m512 negative_infinity = _mm512_set1_ps(-INFINITY);
    __m512 best = negative_infinity;
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        best = _mm512_max_ps(best, v);
    }
    if (i < n) {
        const __m512 v = _mm512_mask_loadu_ps(negative_infinity, mh_tail_mask(n - i), x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        best = _mm512_max_ps(best, v);
    }
    if (nan) return NAN;
    return _mm512_reduce_max_ps(best);
}

/* y = exp(x - m) for 16 lanes. With a finite m, x = -inf gives -inf - m = -inf and so 0; only
 * m = -inf needs the explicit rule (else -inf - -inf = NaN). */
MH_INLINE_AVX512 __m512 mh_exp_sub16(__m512 v, __m512 m, int m_is_negative_infinity) {
    __m512 d = _mm512_sub_ps(v, m);
    if (m_is_negative_infinity) {
        const __m512 negative_infinity = _mm512_set1_ps(-INFINITY);
        d = _mm512_mask_mov_ps(d, _mm512_cmp_ps_mask(v, negative_infinity, _CMP_EQ_OQ), negative_infinity);
    }
    return mh_exp16(d);
}

/* The documented fold of the 16 lane sums (l + 8, + 4, + 2, + 1), in registers. */
MH_INLINE_AVX512 float mh_fold16_avx512(__m512 sum) {
    const __m256 lo = _mm512_castps512_ps256(sum);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum), 1));
    return mh_fold8_registers(_mm256_add_ps(lo, hi));
}

MH_INLINE_AVX512 float mh_exp_sub_sum16(const float *x, float m, float *y, int64_t n,
                                        int m_is_negative_infinity) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = mh_exp_sub16(_mm512_loadu_ps(x + i), mv, m_is_negative_infinity);
        _mm512_storeu_ps(y + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        const __mmask16 k = mh_tail_mask(n - i);
        const __m512 e = mh_exp_sub16(_mm512_maskz_loadu_ps(k, x + i), mv, m_is_negative_infinity);
        _mm512_mask_storeu_ps(y + i, k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    return mh_fold16_avx512(sum);
}

MH_TARGET_AVX512
float mh_vexp_sub_sum_avx512(const float *x, float m, float *y, int64_t n) {
    if (m == -INFINITY) return mh_exp_sub_sum16(x, m, y, n, 1);
    return mh_exp_sub_sum16(x, m, y, n, 0);
}

#endif
