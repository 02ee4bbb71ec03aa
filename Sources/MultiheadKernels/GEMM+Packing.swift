extension GEMM {
    /// Packs `A[rows, depth]` into MR-row panels: panel `ip` starts at `dst + ip * mr * kc` and
    /// holds `A(rows.lowerBound + ip * mr + i, depth.lowerBound + p)` at `p * mr + i`; rows past
    /// `rows.upperBound` are zero, so edge tiles compute harmless zeros.
    /// Assumes: `dst` holds `ceil(rows.count / mr) * mr * depth.count` floats; `kernel.mr == mr`.
    static func packA(
        _ a: MatrixView, rows: Range<Int>, depth: Range<Int>, kernel: MicroKernel, into dst: UnsafeMutablePointer<Float>
    ) {
        let kc = depth.count
        if kc == 0 { return }
        let mr = kernel.mr
        let rowStride = a.rowStride, colStride = a.colStride
        var panel = dst
        for i0 in stride(from: rows.lowerBound, to: rows.upperBound, by: mr) {
            let rowCount = Swift.min(mr, rows.upperBound - i0)
            let source = a.base + i0 * rowStride + depth.lowerBound * colStride
            if colStride == 1 {
                // Row-major A: an MR x KC transpose.
                kernel.packTransposed(source, ld: rowStride, count: rowCount, depth: kc, width: mr, into: panel)
            } else if rowStride == 1 {
                // Column-major A (a transposed view): each panel column is contiguous.
                kernel.packCopied(source, ld: colStride, count: rowCount, depth: kc, width: mr, into: panel)
            } else {
                for p in 0..<kc {
                    let out = panel + p * mr
                    for i in 0..<rowCount { out[i] = source[i * rowStride + p * colStride] }
                    (out + rowCount).initialize(repeating: 0, count: mr - rowCount)
                }
            }
            panel += mr * kc
        }
    }

    /// Packs `B[0..<k, columns]` into the `GEMMPanels` layout with depth blocks of `kc`:
    /// `ceil(columns.count / nr)` panels per depth block, columns past the end zero.
    /// Assumes: `dst` holds `k * ceil(columns.count / nr) * nr` floats; `kernel.nr` is the width.
    static func packB(
        _ b: MatrixView, columns: Range<Int>, kc: Int, kernel: MicroKernel, into dst: UnsafeMutablePointer<Float>
    ) {
        let k = b.rows
        let nr = kernel.nr
        let panelCount = (columns.count + nr - 1) / nr
        let rowStride = b.rowStride, colStride = b.colStride
        for p0 in stride(from: 0, to: k, by: kc) {
            let depth = Swift.min(kc, k - p0)
            for jp in 0..<panelCount {
                let out = dst + p0 * panelCount * nr + jp * depth * nr
                let j0 = columns.lowerBound + jp * nr
                let columnCount = Swift.min(nr, columns.upperBound - j0)
                let source = b.base + p0 * rowStride + j0 * colStride
                if colStride == 1 {
                    // Row-major B (weights^T views, V blocks): panel rows are slices of B's rows.
                    kernel.packCopied(source, ld: rowStride, count: columnCount, depth: depth, width: nr, into: out)
                } else if rowStride == 1 {
                    // Column-major B (K^T views): a KC x NR transpose.
                    kernel.packTransposed(source, ld: colStride, count: columnCount, depth: depth, width: nr, into: out)
                } else {
                    for p in 0..<depth {
                        let row = out + p * nr
                        for j in 0..<columnCount { row[j] = source[p * rowStride + j * colStride] }
                        (row + columnCount).initialize(repeating: 0, count: nr - columnCount)
                    }
                }
            }
        }
    }
}
