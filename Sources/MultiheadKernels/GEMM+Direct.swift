import CMultiheadKernels

// The direct path of small products: no packing, no blocking, no padded tiles. For seed-sized
// attention (projections 10 x 12 x 4, score tiles 2 x 2 x 2) packing A and B, running the
// 16 x 16 micro-kernel over mostly padding and copying edge tiles out cost far more than the
// few hundred multiply-adds. `mh_f32_gemm_small_*` (CMultiheadKernels.h) reads A, B and C
// through their strides and computes every element with the blocked path's very operations
// (one fma chain in increasing p from 0, then the same epilogue), so which path runs changes
// speed, never bits; the choice depends on shapes and strides only.

extension GEMM {
    /// Products of at most this many multiply-adds (`m * n * k`) with B's rows contiguous (a
    /// packed panel, a row-major V) take the direct path. Measured on Zen 4, one thread, both
    /// variants, operands in cache: the direct path is 3..8x faster up to 16^3 (22 vs 91 ns at
    /// 2^3, 34 vs 193 ns at 10 x 12 x 4), 1.1..1.7x at 32^3..64^3 and at every m x n x k in
    /// between that was tried (k from 4 to 256, m or n from 2 to 1024), and within 7% of the
    /// blocked path (either way) up to 128^3. Beyond that the blocked path's packing keeps the
    /// operands in cache, so the bound stays at 64^3.
    static let directProductLimit = 64 * 64 * 64

    /// The bound when B's columns are strided (K^T): the direct kernel then first copies B to a
    /// row-major stack tile (at most `directStridedCopyLimit` elements, else a slow scalar
    /// path): 2 x 2 x 2 takes 34 vs 99 ns, 20^3 386 vs 669 ns; 16 x 16 x 32 (the bound) is
    /// level (-8% AVX-512, +20% AVX2); 16 x 16 x 48 and 32^3 lose.
    static let directStridedProductLimit = 8192
    /// The largest `k * n` of a strided B that the direct kernel copies (`MH_F32_GEMM_SMALL_COPY`).
    static let directStridedCopyLimit = Int(MH_F32_GEMM_SMALL_COPY)

    /// Whether `C[m x n] = A[m x k] * B[k x n]` takes the direct path: shapes and B's column
    /// stride only (never threads or data), and it changes no bit of the result.
    @inline(__always)
    static func prefersDirect(m: Int, n: Int, k: Int, bColumnStride: Int) -> Bool {
        let limit = bColumnStride == 1 ? directProductLimit : directStridedProductLimit
        // Each factor first, so that the product cannot overflow.
        if m > limit || n > limit || k > limit { return false }
        let product = m * n * Swift.max(k, 1)
        return product <= limit && (bColumnStride == 1 || n * k <= directStridedCopyLimit)
    }

    /// The direct path against an unpacked B, with `isa`'s direct kernel (the Swift twin for
    /// `.portable`). Assumes: `b` is `[k x n]` for `operands`.
    static func multiplyDirect(_ operands: GEMMOperands, unpacked b: MatrixView, isa: KernelISA) {
        multiplyDirect(
            operands, m: operands.c.rows, n: operands.c.cols, b: b.base, bRowStride: b.rowStride,
            bColStride: b.colStride, c: operands.c.base, bias: operands.bias, isa: isa)
    }

    /// The direct path against a packed B: panel by panel (rows of a panel are contiguous,
    /// `nr` apart). Assumes: `columns` is non-empty and inside `0..<packed.n`, `c` has
    /// `columns.count` columns, and `packed.k <= packed.blocking.kc` (one depth block, so
    /// panel `jp` starts at `jp * k * nr`).
    static func multiplyDirect(_ operands: GEMMOperands, packed: PackedMatrix, columns: Range<Int>) {
        let panels = packed.panels
        let nr = panels.nr, k = packed.k
        precondition(k <= packed.blocking.kc)
        let c = operands.c
        var column = columns.lowerBound
        while column < columns.upperBound {
            let jp = column / nr
            let end = Swift.min((jp + 1) * nr, columns.upperBound)
            let j = column - columns.lowerBound
            multiplyDirect(
                operands, m: c.rows, n: end - column, b: panels.panel(jp, depthStart: 0, depth: k) + (column - jp * nr),
                bRowStride: nr, bColStride: 1, c: c.base + j * c.colStride, bias: operands.bias.map { $0 + j },
                isa: packed.kernel.isa)
            column = end
        }
    }

    /// `C[0..<m, 0..<n]` at `c` (C's strides) from A and `B(p, j) = b[p * bRowStride + j * bColStride]`.
    @inline(__always)
    private static func multiplyDirect(
        _ operands: GEMMOperands, m: Int, n: Int, b: UnsafePointer<Float>, bRowStride: Int, bColStride: Int,
        c: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, isa: KernelISA
    ) {
        let a = operands.a
        var args = mh_f32_microkernel_args(sums_in: nil, bias: bias, scale: operands.scale, flags: operands.epilogueFlags)
        if let function = mh_f32_gemm_small_for_isa(isa.cValue) {
            function(
                Int64(m), Int64(n), Int64(a.cols), a.base, Int64(a.rowStride), Int64(a.colStride),
                b, Int64(bRowStride), Int64(bColStride), c, Int64(operands.c.rowStride), Int64(operands.c.colStride),
                &args)
        } else {
            directReference(
                m: m, n: n, k: a.cols, a: a.base, aRowStride: a.rowStride, aColStride: a.colStride,
                b: b, bRowStride: bRowStride, bColStride: bColStride,
                c: c, cRowStride: operands.c.rowStride, cColStride: operands.c.colStride, args: args)
        }
    }

    /// The Swift twin of `mh_f32_gemm_small_*` (same contract): the portable variant and the
    /// test oracle. `A(i, p) = a[i * aRowStride + p * aColStride]`, likewise B and C;
    /// `args.sums_in` is not read.
    static func directReference(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, aRowStride: Int, aColStride: Int,
        b: UnsafePointer<Float>, bRowStride: Int, bColStride: Int,
        c: UnsafeMutablePointer<Float>, cRowStride: Int, cColStride: Int, args: mh_f32_microkernel_args
    ) {
        let epilogue = args.flags & UInt32(MH_MICROKERNEL_EPILOGUE) != 0
        let accumulate = args.flags & UInt32(MH_MICROKERNEL_ACCUMULATE) != 0
        for i in 0..<Swift.max(m, 0) {
            for j in 0..<Swift.max(n, 0) {
                var sum: Float = 0
                for p in 0..<Swift.max(k, 0) {
                    sum = sum.addingProduct(a[i * aRowStride + p * aColStride], b[p * bRowStride + j * bColStride])
                }
                let out = c + i * cRowStride + j * cColStride
                var v = sum
                if epilogue {
                    if let bias = args.bias { v = v + bias[j] }
                    v = v * args.scale
                    if accumulate { v = out.pointee + v }
                }
                out.pointee = v
            }
        }
    }
}
