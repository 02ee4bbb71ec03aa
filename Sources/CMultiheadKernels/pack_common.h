/* The scalar packing loops shared by the packing variants (internal header). */
#ifndef MH_PACK_COMMON_H
#define MH_PACK_COMMON_H

#include "CMultiheadKernels.h"

/* dst[p*w + i] = src[i*ld + p] for i < n, 0 for n <= i < w; p < kc. */
static inline void mh_pack_transposed_scalar(const float *src, int64_t ld, int64_t n, int64_t kc,
                                             int64_t w, float *dst) {
    for (int64_t p = 0; p < kc; p++) {
        float *out = dst + p * w;
        for (int64_t i = 0; i < n; i++) out[i] = src[i * ld + p];
        for (int64_t i = n; i < w; i++) out[i] = 0.0f;
    }
}

/* dst[p*w + i] = src[p*ld + i] for i < n, 0 for n <= i < w; p < kc. */
static inline void mh_pack_copied_scalar(const float *src, int64_t ld, int64_t n, int64_t kc,
                                         int64_t w, float *dst) {
    for (int64_t p = 0; p < kc; p++) {
        float *out = dst + p * w;
        const float *in = src + p * ld;
        for (int64_t i = 0; i < n; i++) out[i] = in[i];
        for (int64_t i = n; i < w; i++) out[i] = 0.0f;
    }
}

#endif
