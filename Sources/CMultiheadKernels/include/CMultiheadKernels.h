#ifndef CMULTIHEAD_KERNELS_H
#define CMULTIHEAD_KERNELS_H

/*
 * ISA-specific inner loops of Multihead: the GEMM micro-kernels and the vector math of the
 * online softmax. Everything above them (blocking, packing, dispatch policy) is Swift, in
 * Sources/MultiheadKernels; each kernel here has a portable Swift twin there that is both the
 * fallback and the test oracle.
 *
 * No compiler flags: every ISA-specific function carries its own
 * __attribute__((target(...))) and is only called after mh_kernels_isa_supported() said yes.
 */

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Internal to libmultihead: none of these symbols is exported (include/multihead.h is the ABI). */
#pragma GCC visibility push(hidden)

/* MARK: - Instruction sets */

/** Instruction-set variants, ordered: a higher value needs a superset of the CPU features. */
typedef enum mh_isa {
    MH_ISA_PORTABLE = 0, /**< no C kernel: the Swift reference kernels run */
    MH_ISA_AVX2 = 1,     /**< x86-64 AVX2 + FMA (Haswell, Zen 1 and later) */
    MH_ISA_AVX512 = 2,   /**< x86-64 AVX-512F + FMA (Skylake-SP, Zen 4 and later) */
} mh_isa;

/** The best variant this CPU and OS support (`__builtin_cpu_supports`, which checks XCR0). */
mh_isa mh_kernels_best_isa(void);

/**
 * The variant to use: the best one, lowered by the environment variable
 * `MULTIHEAD_ISA=portable|avx2|avx512` when set (a request above what the CPU supports is
 * lowered to the best supported variant; an unknown value is ignored).
 */
mh_isa mh_kernels_selected_isa(void);

/** Whether `isa` may run on this CPU (portable always may). */
int mh_kernels_isa_supported(mh_isa isa);

/** `(int)mh_kernels_selected_isa()`, kept for callers that only want a number to print. */
int mh_kernels_isa_level(void);

/* MARK: - GEMM micro-kernel */

/** `flags` bits of mh_f32_microkernel_args. */
enum {
    /** Write `scale * (S + bias)` (see the contract) instead of the raw sums `S`. */
    MH_MICROKERNEL_EPILOGUE = 1u << 0,
    /** With MH_MICROKERNEL_EPILOGUE: add the result to the old value of C. */
    MH_MICROKERNEL_ACCUMULATE = 1u << 1,
};

/** The less frequently changing arguments of a micro-kernel call. */
typedef struct mh_f32_microkernel_args {
    /** NULL: the sums start at 0. Else `MR x NR` partial sums, row-major (`sums_in[i*NR + j]`). */
    const float *sums_in;
    /** NULL, or the NR biases of this tile's columns (read only with MH_MICROKERNEL_EPILOGUE). */
    const float *bias;
    /** Multiplier of the epilogue (read only with MH_MICROKERNEL_EPILOGUE). */
    float scale;
    /** MH_MICROKERNEL_* bits. */
    uint32_t flags;
} mh_f32_microkernel_args;

/*
 * The micro-kernel contract (after BLIS's KernelsHowTo), shared by every variant:
 *
 *   void f32_MRxNR_isa(kc, a, b, c, rs_c, cs_c, args)
 *
 *   computes the MR x NR tile   S = S0 + A_panel * B_panel   where
 *     A_panel  MR x kc, packed column after column:  a[p*MR + i] = A(i, p)
 *     B_panel  kc x NR, packed row after row:        b[p*NR + j] = B(p, j)
 *     S0       0, or args->sums_in[i*NR + j] (the sums of the earlier k blocks)
 *   Every S(i, j) is ONE chain of fused multiply-adds in increasing p,
 *       s = fma(A(i, p), B(p, j), s),
 *   so it depends only on the operands, never on how the caller blocked k, m or n: splitting
 *   the k loop into blocks whose sums go through sums_in gives the same bits as one call.
 *   Then, for every i < MR, j < NR, with c(i, j) = c[i*rs_c + j*cs_c]:
 *     without MH_MICROKERNEL_EPILOGUE:  c(i, j) = S(i, j)
 *     with it:   v = S(i, j);  if bias: v = v + bias[j];  v = v * scale;
 *                if MH_MICROKERNEL_ACCUMULATE: v = c(i, j) + v;   c(i, j) = v
 *   (each step rounded to float, never contracted into an fma).
 *
 *   Assumptions: kc >= 0; the whole MR x NR tile of c is writable (edge tiles are computed into
 *   a local MR x NR tile by the caller and copied out); rs_c, cs_c any (cs_c == 1 is the fast
 *   path); a, b, sums_in any alignment (64 bytes is best); c does not overlap a, b or bias, and
 *   overlaps sums_in only as the same tile (c == sums_in, rs_c == NR, cs_c == 1: the partial
 *   sums updated in place, as the GEMM loops do between k blocks).
 */
typedef void (*mh_f32_microkernel_fn)(int64_t kc, const float *a, const float *b, float *c,
                                      int64_t rs_c, int64_t cs_c,
                                      const mh_f32_microkernel_args *args);

/** AVX-512: 16 x 16 tile = 16 zmm accumulators, one B vector, A broadcast from memory. */
#define MH_F32_AVX512_MR 16
#define MH_F32_AVX512_NR 16
void f32_16x16_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t rs_c,
                      int64_t cs_c, const mh_f32_microkernel_args *args);

/** AVX2: 6 x 16 tile = 12 ymm accumulators, two B vectors, A broadcast. */
#define MH_F32_AVX2_MR 6
#define MH_F32_AVX2_NR 16
void f32_6x16_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t rs_c,
                   int64_t cs_c, const mh_f32_microkernel_args *args);

/*
 * Packing kernels (BLIS's packm) fill one panel of width w (MR for A, NR for B), kc deep, from a
 * source with one unit stride:
 *
 *   transposed:  dst[p*w + i] = src[i*ld + p]   (A row-major; B with unit row stride, as K^T)
 *   copied:      dst[p*w + i] = src[p*ld + i]   (A column-major; B row-major, as V or W^T)
 *
 * for p < kc and i < n, and dst[p*w + i] = 0 for n <= i < w (the zero padding of edge tiles).
 * Assumes 1 <= n <= w, kc >= 0, dst holds kc*w floats not overlapping src. Any w works; the
 * variants are fast for their own kernel's MR and NR (16 for AVX-512; 16 and 6 for AVX2).
 */
typedef void (*mh_f32_pack_fn)(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                               float *dst);

void mh_pack_transposed_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                               float *dst);
void mh_pack_copied_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                           float *dst);
void mh_pack_transposed_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                             float *dst);
void mh_pack_copied_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int64_t w,
                         float *dst);

/** One micro-kernel variant: its function (NULL for portable), register tile and packers. */
typedef struct mh_f32_microkernel_info {
    mh_f32_microkernel_fn kernel;
    int32_t mr;
    int32_t nr;
    mh_f32_pack_fn pack_transposed;
    mh_f32_pack_fn pack_copied;
} mh_f32_microkernel_info;

/** The C micro-kernel of `isa`; all NULL / 0 for MH_ISA_PORTABLE or a non-x86 build. */
mh_f32_microkernel_info mh_f32_microkernel_for_isa(mh_isa isa);

/* MARK: - Direct GEMM of small products */

/*
 * The direct (unblocked, unpacked) GEMM of products too small for packing to pay off:
 *
 *   void mh_f32_gemm_small_isa(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, rs_c, cs_c, args)
 *
 *   with A(i, p) = a[i*rs_a + p*cs_a], B(p, j) = b[p*rs_b + j*cs_b], c(i, j) = c[i*rs_c + j*cs_c]
 *   computes for every i < m, j < n the sum S(i, j) = ONE chain of fused multiply-adds in
 *   increasing p from 0.0f, s = fma(A(i, p), B(p, j), s), then the micro-kernel's epilogue
 *   (args->flags, args->bias[j], args->scale exactly as in mh_f32_microkernel_args, each step
 *   rounded, never contracted): the same operations as the micro-kernel contract, so it gives
 *   the bits of the blocked GEMM for any shape. args->sums_in is not read (pass NULL).
 *
 *   Vectorised over j (8 accumulators: 4 rows x 2 vectors or 8 rows x 1, masked tails; nothing
 *   is read or written past column n or row m) when cs_b == 1 (rows of a packed panel, a
 *   row-major V). A B with cs_b != 1 (K^T) of k*n <= MH_F32_GEMM_SMALL_COPY elements is first
 *   copied row-major to the stack; a larger one gets a scalar fma chain per element (correct, slow: callers
 *   keep it small). Strides are any; m, n, k >= 0 (m or n == 0: nothing happens; k == 0: S = 0,
 *   the epilogue runs); no padding is assumed anywhere; a, b, bias any alignment; c does not
 *   overlap a, b or bias.
 */
/** The largest k*n of a strided B that the direct GEMM copies to the stack (16 KB). */
#define MH_F32_GEMM_SMALL_COPY 4096

typedef void (*mh_f32_gemm_small_fn)(int64_t m, int64_t n, int64_t k,
                                     const float *a, int64_t rs_a, int64_t cs_a,
                                     const float *b, int64_t rs_b, int64_t cs_b,
                                     float *c, int64_t rs_c, int64_t cs_c,
                                     const mh_f32_microkernel_args *args);

void mh_f32_gemm_small_avx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a,
                              int64_t cs_a, const float *b, int64_t rs_b, int64_t cs_b, float *c,
                              int64_t rs_c, int64_t cs_c, const mh_f32_microkernel_args *args);
void mh_f32_gemm_small_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t rs_a,
                            int64_t cs_a, const float *b, int64_t rs_b, int64_t cs_b, float *c,
                            int64_t rs_c, int64_t cs_c, const mh_f32_microkernel_args *args);

/** The direct GEMM of `isa`; NULL for MH_ISA_PORTABLE or a non-x86 build (Swift runs). */
mh_f32_gemm_small_fn mh_f32_gemm_small_for_isa(mh_isa isa);

/* MARK: - Vector math (online softmax) */

/*
 * exp: Cody-Waite reduction x = n*ln2 + r, |r| <= ln2/2, exp(r) = 1 + r + r^2 * P5(r) (Cephes
 * expf coefficients, Horner with fma), exp(x) = exp(r) * 2^n with a single rounding (so
 * subnormal results are correctly scaled). Every variant runs the same operations, so all give
 * the same bits (checked over all 2.24e9 floats in [-105, 90]; a NaN's payload is the one
 * exception, unspecified). Measured against
 * double-precision exp over every one of them: max error 1.02 ulp for normal results
 * (relative error <= 8.5e-8); subnormal results are within 0.75 of the subnormal spacing
 * (2^-149). Exact cases: exp(-inf) = 0, exp(x <= -104) = 0, exp(x > 88.7228) = +inf (as the
 * rounded result overflows), exp(+inf) = +inf, exp(NaN) = NaN, exp(+-0) = 1.
 *
 * Arrays may alias elementwise (y == x is allowed); n >= 0.
 */

/** `y[i] = exp(x[i])`. */
typedef void (*mh_vexp_fn)(const float *x, float *y, int64_t n);
/** The largest `x[i]`; NaN if any `x[i]` is NaN; -inf when n == 0. */
typedef float (*mh_vmax_fn)(const float *x, int64_t n);
/**
 * `y[i] = exp(x[i] - m)` (an `x[i]` of -inf gives 0 even when m is -inf, so a fully masked
 * row gives zeros), returning the sum of the y. The sum is taken in 16 lanes, lane l adding
 * y[l], y[l+16], ... in order, then lanes folded pairwise (l + 8, + 4, + 2, + 1): a fixed
 * order, the same in every variant.
 */
typedef float (*mh_vexp_sub_sum_fn)(const float *x, float m, float *y, int64_t n);

void mh_vexp_avx512(const float *x, float *y, int64_t n);
float mh_vmax_avx512(const float *x, int64_t n);
float mh_vexp_sub_sum_avx512(const float *x, float m, float *y, int64_t n);
void mh_vexp_avx2(const float *x, float *y, int64_t n);
float mh_vmax_avx2(const float *x, int64_t n);
float mh_vexp_sub_sum_avx2(const float *x, float m, float *y, int64_t n);

/** The vector-math functions of one variant; all NULL for MH_ISA_PORTABLE (Swift runs). */
typedef struct mh_vector_math_table {
    mh_vexp_fn exp;
    mh_vmax_fn max;
    mh_vexp_sub_sum_fn exp_sub_sum;
} mh_vector_math_table;

mh_vector_math_table mh_vector_math_for_isa(mh_isa isa);

/* MARK: - Peak */

/** Runs `iterations` rounds of 12 independent FMA chains with the best ISA available; returns the
 *  floating-point operations done (0 without AVX2), the chains' sum in *sink. */
double mh_fma_loop(int64_t iterations, float *sink);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
