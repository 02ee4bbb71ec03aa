/* Internal helpers shared by the micro-kernel variants (not part of the module's API). */
#ifndef MH_MICROKERNEL_COMMON_H
#define MH_MICROKERNEL_COMMON_H

#include "CMultiheadKernels.h"

/* The epilogue is specified operation by operation; an fma would change its bits. */
#pragma STDC FP_CONTRACT OFF

/*
 * Writes an MR x NR tile of finished sums to c with any strides, applying the epilogue of the
 * micro-kernel contract element by element. The slow path, for cs_c != 1.
 */
static inline void mh_write_tile_strided(const float *tile, int mr, int nr, float *c,
                                         int64_t rs_c, int64_t cs_c,
                                         const mh_f32_microkernel_args *args) {
    const int epilogue = (args->flags & MH_MICROKERNEL_EPILOGUE) != 0;
    const int accumulate = (args->flags & MH_MICROKERNEL_ACCUMULATE) != 0;
    for (int i = 0; i < mr; i++) {
        for (int j = 0; j < nr; j++) {
            float v = tile[i * nr + j];
            float *out = c + i * rs_c + j * cs_c;
            if (epilogue) {
                if (args->bias) v = v + args->bias[j];
                v = v * args->scale;
                if (accumulate) v = *out + v;
            }
            *out = v;
        }
    }
}

#endif
