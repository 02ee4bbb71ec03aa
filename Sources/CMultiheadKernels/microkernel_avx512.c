/* f32_16x16_avx512: the AVX-512 GEMM micro-kernel (contract in CMultiheadKernels.h). */
#include "microkernel_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MH_TARGET_AVX512 __attribute__((target("avx512f,fma")))

/*
 * Why 16 x 16 on Zen 4: a zmm FMA issues once per cycle with 4 cycles of latency, so any tile
 * with >= 8 accumulators hides the latency; measured in L1 (kc 256..512), 8x16, 16x16 and
 * 24x16 run at the 116 GFLOP/s FMA peak while 2-vector-wide tiles (6x32, 14x32: two B loads
 * per step) reach 95..108. 16 rows halve the B reloads of 8x16; NR = 16 wastes the least on
 * the small head dimensions (D = 16, 48, 80...) and divides the 64-wide attention blocks.
 */
enum { MR = MH_F32_AVX512_MR, NR = MH_F32_AVX512_NR };

MH_TARGET_AVX512
void f32_16x16_avx512(int64_t kc, const float *restrict a, const float *restrict b,
                      float *c, int64_t rs_c, int64_t cs_c,
                      const mh_f32_microkernel_args *restrict args) {
    __m512 acc[MR];
    if (args->sums_in) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc[i] = _mm512_loadu_ps(args->sums_in + i * NR);
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc[i] = _mm512_setzero_ps();
    }

    for (int64_t p = 0; p < kc; p++) {
        const __m512 bv = _mm512_loadu_ps(b);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bv, acc[i]);
        a += MR;
        b += NR;
    }

    if (cs_c != 1) {
        float tile[MR * NR] __attribute__((aligned(64)));
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) _mm512_store_ps(tile + i * NR, acc[i]);
        mh_write_tile_strided(tile, MR, NR, c, rs_c, cs_c, args);
        return;
    }
    if (!(args->flags & MH_MICROKERNEL_EPILOGUE)) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) _mm512_storeu_ps(c + i * rs_c, acc[i]);
        return;
    }
    const __m512 scale = _mm512_set1_ps(args->scale);
    if (args->bias) {
        const __m512 bias = _mm512_loadu_ps(args->bias);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc[i] = _mm512_add_ps(acc[i], bias);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) acc[i] = _mm512_mul_ps(acc[i], scale);
    if (args->flags & MH_MICROKERNEL_ACCUMULATE) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++)
            acc[i] = _mm512_add_ps(_mm512_loadu_ps(c + i * rs_c), acc[i]);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) _mm512_storeu_ps(c + i * rs_c, acc[i]);
}

#endif
