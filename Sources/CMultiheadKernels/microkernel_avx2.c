/* f32_6x16_avx2: the AVX2 GEMM micro-kernel (contract in CMultiheadKernels.h). */
#include "microkernel_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MH_TARGET_AVX2 __attribute__((target("avx2,fma")))

/*
 * 6 x 16: the classic Haswell shape. 12 ymm accumulators + 2 B vectors + 1 broadcast fit the
 * 16 ymm registers; 12 independent FMA chains cover 2 FMA ports x 4..5 cycles of latency.
 */
enum { MR = MH_F32_AVX2_MR, NR = MH_F32_AVX2_NR };

MH_TARGET_AVX2
void f32_6x16_avx2(int64_t kc, const float *restrict a, const float *restrict b,
                   float *c, int64_t rs_c, int64_t cs_c,
                   const mh_f32_microkernel_args *restrict args) {
    __m256 acc[MR][2];
    if (args->sums_in) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm256_loadu_ps(args->sums_in + i * NR);
            acc[i][1] = _mm256_loadu_ps(args->sums_in + i * NR + 8);
        }
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    }

    for (int64_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }

    if (cs_c != 1) {
        float tile[MR * NR] __attribute__((aligned(32)));
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            _mm256_store_ps(tile + i * NR, acc[i][0]);
            _mm256_store_ps(tile + i * NR + 8, acc[i][1]);
        }
        mh_write_tile_strided(tile, MR, NR, c, rs_c, cs_c, args);
        return;
    }
    if (!(args->flags & MH_MICROKERNEL_EPILOGUE)) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            _mm256_storeu_ps(c + i * rs_c, acc[i][0]);
            _mm256_storeu_ps(c + i * rs_c + 8, acc[i][1]);
        }
        return;
    }
    const __m256 scale = _mm256_set1_ps(args->scale);
    if (args->bias) {
        const __m256 bias0 = _mm256_loadu_ps(args->bias);
        const __m256 bias1 = _mm256_loadu_ps(args->bias + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm256_add_ps(acc[i][0], bias0);
            acc[i][1] = _mm256_add_ps(acc[i][1], bias1);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        acc[i][0] = _mm256_mul_ps(acc[i][0], scale);
        acc[i][1] = _mm256_mul_ps(acc[i][1], scale);
    }
    if (args->flags & MH_MICROKERNEL_ACCUMULATE) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm256_add_ps(_mm256_loadu_ps(c + i * rs_c), acc[i][0]);
            acc[i][1] = _mm256_add_ps(_mm256_loadu_ps(c + i * rs_c + 8), acc[i][1]);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(c + i * rs_c, acc[i][0]);
        _mm256_storeu_ps(c + i * rs_c + 8, acc[i][1]);
    }
}

#endif
