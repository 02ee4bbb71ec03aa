/* Constants and scalar steps shared by the vector-math variants (internal header). */
#ifndef MH_VECTOR_MATH_COMMON_H
#define MH_VECTOR_MATH_COMMON_H

#include "CMultiheadKernels.h"

/* The Swift reference (VectorMathReference.swift) repeats these numbers and steps exactly. */
#pragma STDC FP_CONTRACT OFF

/* exp(x) is 0 (after rounding) below -103.97 and overflows above 88.73: clamping to
 * [MH_EXP_LO, MH_EXP_HI] keeps n = round(x*log2(e)) in [-150, 128], where 2^n * p still
 * rounds to 0 and +inf respectively. */
#define MH_EXP_LO (-104.0f)
#define MH_EXP_HI (88.8f)
#define MH_EXP_LOG2E 1.44269504088896341f
/* ln 2 split so that n * MH_EXP_LN2_HI is exact (Cody-Waite, Cephes). */
#define MH_EXP_LN2_HI 0.693359375f
#define MH_EXP_LN2_LO (-2.12194440e-4f)
/* exp(r) = 1 + r + r^2 * P(r) on |r| <= ln2/2, Cephes expf. */
#define MH_EXP_P0 1.9875691500e-4f
#define MH_EXP_P1 1.3981999507e-3f
#define MH_EXP_P2 8.3334519073e-3f
#define MH_EXP_P3 4.1665795894e-2f
#define MH_EXP_P4 1.6666665459e-1f
#define MH_EXP_P5 5.0000001201e-1f

/* The 16 lane sums are folded pairwise: lanes l + l+8, then + 4, + 2, + 1 (the documented fixed
 * order). The variants do the first step on their registers; this does the rest on the 8
 * lanes left, in registers (a round trip through memory would stall store forwarding). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline __attribute__((always_inline, target("avx2,fma"))) float mh_fold8_registers(__m256 s8) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
#endif

#endif
