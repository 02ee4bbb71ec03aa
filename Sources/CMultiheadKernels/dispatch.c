/* Run-time choice of the kernel variants (see CMultiheadKernels.h). */
#include "CMultiheadKernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define MH_X86 1
#endif

mh_isa mh_kernels_best_isa(void) {
#ifdef MH_X86
    __builtin_cpu_init();
    /* libgcc / compiler-rt check XCR0 too, so "supported" means the OS saves the registers. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return MH_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MH_ISA_AVX2;
#endif
    return MH_ISA_PORTABLE;
}

int mh_kernels_isa_supported(mh_isa isa) {
    return isa >= MH_ISA_PORTABLE && isa <= mh_kernels_best_isa();
}

mh_isa mh_kernels_selected_isa(void) {
    mh_isa best = mh_kernels_best_isa();
    const char *requested = getenv("MULTIHEAD_ISA");
    if (requested == NULL) return best;
    mh_isa wanted = best;
    if (strcmp(requested, "portable") == 0) wanted = MH_ISA_PORTABLE;
    else if (strcmp(requested, "avx2") == 0) wanted = MH_ISA_AVX2;
    else if (strcmp(requested, "avx512") == 0) wanted = MH_ISA_AVX512;
    return wanted < best ? wanted : best;
}

int mh_kernels_isa_level(void) { return (int)mh_kernels_selected_isa(); }

mh_f32_microkernel_info mh_f32_microkernel_for_isa(mh_isa isa) {
    mh_f32_microkernel_info info = {0, 0, 0, 0, 0};
#ifdef MH_X86
    switch (isa) {
    case MH_ISA_AVX512:
        info.kernel = f32_16x16_avx512;
        info.mr = MH_F32_AVX512_MR;
        info.nr = MH_F32_AVX512_NR;
        info.pack_transposed = mh_pack_transposed_avx512;
        info.pack_copied = mh_pack_copied_avx512;
        break;
    case MH_ISA_AVX2:
        info.kernel = f32_6x16_avx2;
        info.mr = MH_F32_AVX2_MR;
        info.nr = MH_F32_AVX2_NR;
        info.pack_transposed = mh_pack_transposed_avx2;
        info.pack_copied = mh_pack_copied_avx2;
        break;
    default:
        break;
    }
#else
    (void)isa;
#endif
    return info;
}

mh_vector_math_table mh_vector_math_for_isa(mh_isa isa) {
    mh_vector_math_table table = {0, 0, 0};
#ifdef MH_X86
    switch (isa) {
    case MH_ISA_AVX512:
        table.exp = mh_vexp_avx512;
        table.max = mh_vmax_avx512;
        table.exp_sub_sum = mh_vexp_sub_sum_avx512;
        break;
    case MH_ISA_AVX2:
        table.exp = mh_vexp_avx2;
        table.max = mh_vmax_avx2;
        table.exp_sub_sum = mh_vexp_sub_sum_avx2;
        break;
    default:
        break;
    }
#else
    (void)isa;
#endif
    return table;
}
