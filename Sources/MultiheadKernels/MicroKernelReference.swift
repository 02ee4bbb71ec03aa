import CMultiheadKernels

extension MicroKernel {
    /// The micro-kernel contract of `CMultiheadKernels.h` in portable Swift, for any `mr x nr`.
    ///
    /// Each sum is one `addingProduct` (fma) chain in increasing `p`, starting from 0 or from
    /// `args.sums_in`, exactly as the C variants compute it, so they agree bit for bit.
    /// - Parameters:
    ///   - a: the A panel `[mr x kc]`, `a[p * mr + i]`.
    ///   - b: the B panel `[kc x nr]`, `b[p * nr + j]`.
    ///   - c: the `[mr x nr]` tile, `c[i * rowStride + j * colStride]`.
    static func reference(
        mr: Int, nr: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, rowStride: Int, colStride: Int, args: mh_f32_microkernel_args
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { buffer in
            let sums = buffer.baseAddress!
            if let sumsIn = args.sums_in {
                sums.update(from: sumsIn, count: mr * nr)
            } else {
                sums.initialize(repeating: 0, count: mr * nr)
            }
            for p in 0..<kc {
                let aColumn = a + p * mr
                let bRow = b + p * nr
                for i in 0..<mr {
                    let ai = aColumn[i]
                    let sumRow = sums + i * nr
                    for j in 0..<nr { sumRow[j] = sumRow[j].addingProduct(ai, bRow[j]) }
                }
            }
            storeTile(
                sums, tileRowStride: nr, rows: mr, columns: 0..<nr, into: c, rowStride: rowStride,
                colStride: colStride, bias: args.bias, scale: args.scale, flags: args.flags)
        }
    }

    /// Writes finished sums to `C` through the contract's epilogue, element by element.
    ///
    /// Used by the reference kernel and to copy edge tiles out (whose sums the C kernels left
    /// raw in a local tile); the operations are the C kernels' own, in the same order, so an
    /// element gets the same bits whichever path wrote it.
    /// - Parameters:
    ///   - tile: sums, `tile[i * tileRowStride + j]`.
    ///   - columns: the tile columns to write; tile column `j` goes to `c[.. + (j - columns.lowerBound) * colStride]`.
    ///   - bias: `nil` or indexed like `c`'s columns (`bias[j - columns.lowerBound]`).
    @inline(__always)
    static func storeTile(
        _ tile: UnsafePointer<Float>, tileRowStride: Int, rows: Int, columns: Range<Int>,
        into c: UnsafeMutablePointer<Float>, rowStride: Int, colStride: Int,
        bias: UnsafePointer<Float>?, scale: Float, flags: UInt32
    ) {
        let epilogue = flags & UInt32(MH_MICROKERNEL_EPILOGUE) != 0
        let accumulate = flags & UInt32(MH_MICROKERNEL_ACCUMULATE) != 0
        for i in 0..<rows {
            let tileRow = tile + i * tileRowStride
            let cRow = c + i * rowStride
            for (jc, j) in columns.enumerated() {
                var v = tileRow[j]
                let out = cRow + jc * colStride
                if epilogue {
                    if let bias { v = v + bias[jc] }
                    v = v * scale
                    if accumulate { v = out.pointee + v }
                }
                out.pointee = v
            }
        }
    }

    /// The transposing packer in Swift: `dst[p * width + i] = src[i * ld + p]`, zero padded.
    static func referencePackTransposed(
        _ src: UnsafePointer<Float>, ld: Int, count: Int, depth: Int, width: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<depth {
            let out = dst + p * width
            for i in 0..<count { out[i] = src[i * ld + p] }
            (out + count).initialize(repeating: 0, count: width - count)
        }
    }

    /// The copying packer in Swift: `dst[p * width + i] = src[p * ld + i]`, zero padded.
    static func referencePackCopied(
        _ src: UnsafePointer<Float>, ld: Int, count: Int, depth: Int, width: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<depth {
            let out = dst + p * width
            out.update(from: src + p * ld, count: count)
            (out + count).initialize(repeating: 0, count: width - count)
        }
    }
}
