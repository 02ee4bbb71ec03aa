import Foundation

/// Fused attention, flash style: for a block of queries, stream blocks of keys and values,
/// `S = Q K^T`, add masks generated block by block, keep a running row max and row sum
/// (online softmax) and accumulate `O += P V`. Only a `[blockQueries x blockKeys]` score tile
/// exists at any time; no `[L, S]` buffer is made unless the caller writes weights.
public enum FlashAttention {
    /// Query rows per tile.
    public static let blockQueries = 64
    /// Keys per streamed block.
    public static let blockKeys = 256

    /// Per-worker scratch: one score tile and the GEMM packing buffers.
    public final class Workspace: @unchecked Sendable {
        let scores: UnsafeMutablePointer<Float>
        let rowMax: UnsafeMutablePointer<Float>
        let rowSum: UnsafeMutablePointer<Float>
        let rowScale: UnsafeMutablePointer<Float>
        public let gemm: GEMMWorkspace

        public init(cacheSizes: CacheSizes = CacheSizes()) {
            scores = .allocate(capacity: blockQueries * blockKeys)
            rowMax = .allocate(capacity: blockQueries)
            rowSum = .allocate(capacity: blockQueries)
            rowScale = .allocate(capacity: blockQueries)
            gemm = GEMMWorkspace(cacheSizes: cacheSizes)
        }

        deinit {
            scores.deallocate()
            rowMax.deallocate()
            rowSum.deallocate()
            rowScale.deallocate()
        }
    }

    /// Where `attend` writes the softmax probabilities itself (see `attend`'s `weights`).
    public struct WeightsOutput {
        /// `[L, S]`, any strides: `weights[l, s] (+)= scale * p[l, s]`.
        public var view: MutableMatrixView
        public var scale: Float
        /// Add to `view` instead of overwriting (head averaging).
        public var accumulate: Bool

        public init(view: MutableMatrixView, scale: Float, accumulate: Bool) {
            self.view = view
            self.scale = scale
            self.accumulate = accumulate
        }
    }

    /// Computes `softmax(Q K^T + masks) V` for the query rows `queries`.
    ///
    /// - Parameters:
    ///   - output: `[L, D]` rows (row stride `outputRowStride`); rows in `queries` are written.
    ///   - statistics: `nil`, or `[L, 2]` receiving each row's max and sum of `exp(s - max)`,
    ///     which `weights(...)` needs.
    ///   - weights: `nil`, or where to write the weights of these rows directly, which needs
    ///     every key in one block (`keyCount <= blockKeys`): the same bits as `weights(...)`
    ///     (the same scores, exp and factor) without computing the scores a second time.
    /// A row whose keys are all masked gets zeros (and sum 0), never NaN.
    public static func attend(
        _ problem: AttentionProblem, queries: Range<Int>, output: UnsafeMutablePointer<Float>,
        outputRowStride: Int, statistics: UnsafeMutablePointer<Float>?, weights: WeightsOutput? = nil,
        workspace: Workspace
    ) {
        precondition(weights == nil || problem.keyCount <= blockKeys)
        let rows = queries.count
        let D = problem.headDim
        precondition(rows <= blockQueries)
        let o = MutableMatrixView(base: output + queries.lowerBound * outputRowStride, rows: rows, cols: D,
                                  rowStride: outputRowStride)
        for i in 0..<rows {
            workspace.rowMax[i] = -.infinity
            workspace.rowSum[i] = 0
        }
        // The first key block computed writes O (rather than zeroing O, scaling it by 0 and adding).
        var first = true
        var s0 = 0
        while s0 < problem.keyCount {
            let keys = s0..<min(s0 + blockKeys, problem.keyCount)
            s0 = keys.upperBound
            if problem.causallyHidden(queries: queries, keys: keys) { continue }
            let cols = keys.count
            scoreTile(problem, queries: queries, keys: keys, workspace: workspace)
            for i in 0..<rows {
                let row = workspace.scores + i * blockKeys
                let oldMax = workspace.rowMax[i]
                let blockMax = VectorMath.maximum(row, count: cols)
                var newMax = max(oldMax, blockMax)
                // A NaN score makes the row NaN, as in PyTorch; it must not pass for a masked key
                // (a vector max may skip NaN and report -inf when every other key is masked).
                if oldMax.isNaN || blockMax.isNaN || (newMax == -.infinity && (0..<cols).contains(where: { row[$0].isNaN })) {
                    newMax = .nan
                }
                if newMax == -.infinity {
                    // Every key so far is masked: this block contributes nothing.
                    for j in 0..<cols { row[j] = 0 }
                    workspace.rowScale[i] = 1
                    continue
                }
                let blockSum = VectorMath.expSubtractingSum(row, subtracting: newMax, into: row, count: cols)
                let rescale = oldMax == -.infinity ? 0 : Float(exp(Double(oldMax - newMax)))
                workspace.rowScale[i] = rescale
                workspace.rowSum[i] = newMax.isNaN ? .nan : workspace.rowSum[i] * rescale + blockSum
                workspace.rowMax[i] = newMax
            }
            if !first {
                for i in 0..<rows where workspace.rowScale[i] != 1 {
                    scaleRow(o.base + i * outputRowStride, count: D, by: workspace.rowScale[i])
                }
            }
            let p = MatrixView(base: workspace.scores, rows: rows, cols: cols, rowStride: blockKeys)
            if let values = problem.packedValueBlocks {
                GEMM.multiply(p, values[keys.lowerBound / blockKeys], columns: 0..<D, accumulate: !first, into: o,
                              workspace: workspace.gemm)
            } else {
                let v = MatrixView(base: problem.v + keys.lowerBound * problem.vRowStride, rows: cols, cols: D,
                                   rowStride: problem.vRowStride)
                GEMM.multiply(p, v, accumulate: !first, into: o, workspace: workspace.gemm)
            }
            first = false
        }
        if first {  // no key block computed (no keys, or all hidden): zero attention
            for i in 0..<rows { (o.base + i * outputRowStride).update(repeating: 0, count: D) }
        }
        if let weights {
            // One key block: the scores tile still holds exp(s - max), as weights(...) computes it.
            let computed = problem.keyCount > 0 && !problem.causallyHidden(queries: queries, keys: 0..<problem.keyCount)
            for i in 0..<rows {
                let row = workspace.scores + i * blockKeys
                let sum = workspace.rowSum[i]
                if computed && sum != 0 {  // NaN included: NaN weights, as in PyTorch
                    let factor = weights.scale / sum
                    for j in 0..<problem.keyCount { row[j] *= factor }
                } else {
                    for j in 0..<problem.keyCount { row[j] = 0 }
                }
                let l = queries.lowerBound + i
                if weights.accumulate {
                    for j in 0..<problem.keyCount { weights.view[l, j] += row[j] }
                } else {
                    for j in 0..<problem.keyCount { weights.view[l, j] = row[j] }
                }
            }
        }
        for i in 0..<rows {
            let sum = workspace.rowSum[i]
            // Only a row whose keys are all masked has sum 0; a NaN sum stays NaN.
            let inverse: Float = sum == 0 ? 0 : 1 / sum
            scaleRow(o.base + i * outputRowStride, count: D, by: inverse)
            if let statistics {
                statistics[(queries.lowerBound + i) * 2] = workspace.rowMax[i]
                statistics[(queries.lowerBound + i) * 2 + 1] = sum
            }
        }
    }

    /// `row[0..<count] *= factor` through a pointer (a loop the compiler vectorises).
    @inline(__always)
    static func scaleRow(_ row: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        for d in 0..<count { row[d] *= factor }
    }

    /// Writes (or adds) the softmax probabilities of rows `queries` to `weights`, using the row
    /// statistics that `attend` produced.
    ///
    /// - Parameters:
    ///   - weights: `[L, S]`, any strides; `weights[l, s] (+)= scale * p[l, s]`.
    ///   - accumulate: add to `weights` instead of overwriting (head averaging).
    public static func weights(
        _ problem: AttentionProblem, queries: Range<Int>, statistics: UnsafePointer<Float>,
        into weights: MutableMatrixView, scale: Float, accumulate: Bool, workspace: Workspace
    ) {
        let rows = queries.count
        var s0 = 0
        while s0 < problem.keyCount {
            let keys = s0..<min(s0 + blockKeys, problem.keyCount)
            s0 = keys.upperBound
            let cols = keys.count
            if problem.causallyHidden(queries: queries, keys: keys) {
                if !accumulate {
                    for i in 0..<rows {
                        for j in 0..<cols { weights[queries.lowerBound + i, keys.lowerBound + j] = 0 }
                    }
                }
                continue
            }
            scoreTile(problem, queries: queries, keys: keys, workspace: workspace)
            for i in 0..<rows {
                let l = queries.lowerBound + i
                let rowMax = statistics[l * 2]
                let sum = statistics[l * 2 + 1]
                let row = workspace.scores + i * blockKeys
                if sum != 0 {  // NaN included: NaN weights, as in PyTorch
                    _ = VectorMath.expSubtractingSum(row, subtracting: rowMax, into: row, count: cols)
                    let factor = scale / sum
                    for j in 0..<cols { row[j] *= factor }
                } else {
                    for j in 0..<cols { row[j] = 0 }
                }
                if accumulate {
                    for j in 0..<cols { weights[l, keys.lowerBound + j] += row[j] }
                } else {
                    for j in 0..<cols { weights[l, keys.lowerBound + j] = row[j] }
                }
            }
        }
    }

    /// Packs a problem's keys and values once, so that every query block reuses the panels
    /// instead of packing them again (worth it when there are several query blocks).
    public static func packKeysAndValues(_ problem: inout AttentionProblem, cacheSizes: CacheSizes) {
        let D = problem.headDim
        let kT = MatrixView(base: problem.k, rows: D, cols: problem.keyCount, rowStride: 1, colStride: problem.kRowStride)
        problem.packedKeys = PackedMatrix(kT, cacheSizes: cacheSizes)
        problem.packedValueBlocks = stride(from: 0, to: problem.keyCount, by: blockKeys).map { s0 in
            let v = MatrixView(base: problem.v + s0 * problem.vRowStride, rows: min(blockKeys, problem.keyCount - s0),
                               cols: D, rowStride: problem.vRowStride)
            return PackedMatrix(v, cacheSizes: cacheSizes)
        }
    }

    /// Scores of one tile with every mask applied, into `workspace.scores` (row stride `blockKeys`).
    static func scoreTile(_ problem: AttentionProblem, queries: Range<Int>, keys: Range<Int>, workspace: Workspace) {
        let D = problem.headDim
        let rows = queries.count
        let cols = keys.count
        let q = MatrixView(base: problem.q + queries.lowerBound * problem.qRowStride, rows: rows, cols: D,
                           rowStride: problem.qRowStride)
        let s = MutableMatrixView(base: workspace.scores, rows: rows, cols: cols, rowStride: blockKeys)
        if let packedKeys = problem.packedKeys {
            GEMM.multiply(q, packedKeys, columns: keys, into: s, workspace: workspace.gemm)
        } else {
            let kT = MatrixView(base: problem.k + keys.lowerBound * problem.kRowStride, rows: D, cols: cols,
                                rowStride: 1, colStride: problem.kRowStride)
            GEMM.multiply(q, kT, into: s, workspace: workspace.gemm)
        }
        let maskedCols = min(keys.upperBound, problem.maskedKeys) - keys.lowerBound
        guard maskedCols > 0 else { return }
        for i in 0..<rows {
            let l = queries.lowerBound + i
            let row = workspace.scores + i * blockKeys
            problem.attnMask?.add(row: l, columns: keys.lowerBound, count: maskedCols, to: row)
            problem.paddingMask?.add(row: 0, columns: keys.lowerBound, count: maskedCols, to: row)
            if problem.causal {
                let firstHidden = max(l + 1 - keys.lowerBound, 0)
                if firstHidden < maskedCols {
                    for j in firstHidden..<maskedCols { row[j] = -.infinity }
                }
            }
        }
    }
}
