/* AVX2 vector exp, row max and the softmax step exp(x - m) with its sum. */
#include "vector_math_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#define MH_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MH_INLINE_AVX2 static inline __attribute__((always_inline, target("avx2,fma")))

/* 2^n for integral n in [-150, 128], applied as y * 2^(n/2) * 2^(n - n/2): the first product
 * is exact (both factors normal), the second rounds once, as AVX-512's scalef does. */
MH_INLINE_AVX2 __m256 mh_scale_by_power_of_two(__m256 y, __m256 n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256i rest = _mm256_sub_epi32(ni, half);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, p1), p2);
}

/* exp of 8 lanes; the same steps as mh_exp16 in vector_math_avx512.c. */
MH_INLINE_AVX2 __m256 mh_exp8(__m256 x) {
    /* max/min return their second operand when either is NaN: a NaN x stays NaN to the end
     * (the integer exponent is then garbage, but NaN times anything is NaN). */
    const __m256 xc = _mm256_min_ps(_mm256_set1_ps(MH_EXP_HI), _mm256_max_ps(_mm256_set1_ps(MH_EXP_LO), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(MH_EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MH_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MH_EXP_LN2_LO), r);
    __m256 y = _mm256_set1_ps(MH_EXP_P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(MH_EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(MH_EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(MH_EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(MH_EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(MH_EXP_P5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    return mh_scale_by_power_of_two(y, n);
}

/* Lanes [0, remaining) set, for maskload / maskstore. */
MH_INLINE_AVX2 __m256i mh_tail_mask8(int64_t remaining) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)remaining), lane);
}

/* Stores lanes [0, min(count, 8)) (maskstore would do, but it is microcoded and slow on AMD). */
MH_INLINE_AVX2 void mh_store_lanes8(float *y, int64_t count, __m256 v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    for (int64_t l = 0; l < count && l < 8; l++) y[l] = lanes[l];
}

MH_TARGET_AVX2
void mh_vexp_avx2(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, mh_exp8(_mm256_loadu_ps(x + i)));
    if (i < n) mh_store_lanes8(y + i, n - i, mh_exp8(_mm256_maskload_ps(x + i, mh_tail_mask8(n - i))));
}

MH_TARGET_AVX2
float mh_vmax_avx2(const float *x, int64_t n) {
    const __m256 negative_infinity = _mm256_set1_ps(-INFINITY);
    __m256 best = negative_infinity;
    __m256 nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        best = _mm256_max_ps(best, v);
    }
    if (i < n) {
        const __m256i k = mh_tail_mask8(n - i);
        const __m256 v = _mm256_blendv_ps(negative_infinity, _mm256_maskload_ps(x + i, k),
                                          _mm256_castsi256_ps(k));
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        best = _mm256_max_ps(best, v);
    }
    if (_mm256_movemask_ps(nan)) return NAN;
    float lanes[8];
    _mm256_storeu_ps(lanes, best);
    float result = lanes[0];
    for (int l = 1; l < 8; l++) result = lanes[l] > result ? lanes[l] : result;
    return result;
}

/* y = exp(x - m) for 8 lanes. With a finite m, x = -inf gives -inf - m = -inf and so 0; only
 * m = -inf needs the explicit rule (else -inf - -inf = NaN). */
MH_INLINE_AVX2 __m256 mh_exp_sub8(__m256 v, __m256 m, int m_is_negative_infinity) {
    __m256 d = _mm256_sub_ps(v, m);
    if (m_is_negative_infinity) {
        const __m256 negative_infinity = _mm256_set1_ps(-INFINITY);
        d = _mm256_blendv_ps(d, negative_infinity, _mm256_cmp_ps(v, negative_infinity, _CMP_EQ_OQ));
    }
    return mh_exp8(d);
}

MH_INLINE_AVX2 float mh_exp_sub_sum8(const float *x, float m, float *y, int64_t n,
                                     int m_is_negative_infinity) {
    const __m256 mv = _mm256_set1_ps(m);
    /* Two accumulators = the 16 lanes of the documented summation order. */
    __m256 sum_lo = _mm256_setzero_ps(), sum_hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 e0 = mh_exp_sub8(_mm256_loadu_ps(x + i), mv, m_is_negative_infinity);
        const __m256 e1 = mh_exp_sub8(_mm256_loadu_ps(x + i + 8), mv, m_is_negative_infinity);
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        sum_lo = _mm256_add_ps(sum_lo, e0);
        sum_hi = _mm256_add_ps(sum_hi, e1);
    }
    for (int half = 0; half < 2 && i < n; half++, i += 8) {
        const __m256i k = mh_tail_mask8(n - i);
        const __m256 e = mh_exp_sub8(_mm256_maskload_ps(x + i, k), mv, m_is_negative_infinity);
        mh_store_lanes8(y + i, n - i, e);
        const __m256 contribution = _mm256_and_ps(e, _mm256_castsi256_ps(k));
        if (half == 0) sum_lo = _mm256_add_ps(sum_lo, contribution);
        else sum_hi = _mm256_add_ps(sum_hi, contribution);
    }
    /* The documented fold of the 16 lane sums (l + 8, + 4, + 2, + 1), in registers. */
    return mh_fold8_registers(_mm256_add_ps(sum_lo, sum_hi));
}

MH_TARGET_AVX2
float mh_vexp_sub_sum_avx2(const float *x, float m, float *y, int64_t n) {
    if (m == -INFINITY) return mh_exp_sub_sum8(x, m, y, n, 1);
    return mh_exp_sub_sum8(x, m, y, n, 0);
}

#endif
