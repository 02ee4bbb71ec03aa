/* Run-time choice of the direct small-GEMM variant (see CMultiheadKernels.h). */
#include "CMultiheadKernels.h"

mh_f32_gemm_small_fn mh_f32_gemm_small_for_isa(mh_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    switch (isa) {
    case MH_ISA_AVX512: return mh_f32_gemm_small_avx512;
    case MH_ISA_AVX2: return mh_f32_gemm_small_avx2;
    default: return 0;
    }
#else
    (void)isa;
    return 0;
#endif
}
