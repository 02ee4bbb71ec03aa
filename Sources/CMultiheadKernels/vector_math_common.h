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

/* Folds the 16 lane sums pairwise: l + 8, then + 4, + 2, + 1 (the documented fixed order). */
static inline float mh_fold_16_lanes(float lanes[16]) {
    for (int width = 8; width >= 1; width /= 2)
        for (int l = 0; l < width; l++) lanes[l] = lanes[l] + lanes[l + width];
    return lanes[0];
}

#endif
