import Foundation
import MultiheadKernels

/// Memory an encoder forward call needs, allocated once and shared by its layers.
final class EncoderScratch {
    /// `[R, E]` attention outputs.
    let attention: UnsafeMutablePointer<Float>
    /// `[R, E]`: the pre-norm layers' `norm1(x)`, and the ping-pong buffer between layers.
    let first: UnsafeMutablePointer<Float>
    let second: UnsafeMutablePointer<Float>
    let normed: UnsafeMutablePointer<Float>
    /// One `floatsPerWorker` slice per worker: a row block's `h`, hidden and normed rows.
    let workers: UnsafeMutablePointer<Float>
    let floatsPerWorker: Int

    init(rows: Int, E: Int, dimFeedforward: Int, threads: Int) {
        let block = TransformerEncoderLayer.rowBlock
        let size = max(rows * E, 1)
        attention = .allocate(capacity: size)
        first = .allocate(capacity: size)
        second = .allocate(capacity: size)
        normed = .allocate(capacity: size)
        floatsPerWorker = block * (2 * E + dimFeedforward) + 2 * GELU.chunk
        workers = .allocate(capacity: threads * floatsPerWorker)
    }

    deinit {
        attention.deallocate()
        first.deallocate()
        second.deallocate()
        normed.deallocate()
        workers.deallocate()
    }
}

extension TransformerEncoderLayer {
    /// Rows per feed-forward tile: a multiple of every micro-kernel's MR; the tile's hidden rows
    /// (`64 x dim_feedforward`) stay in L2.
    static let rowBlock = 64
    /// Multiply-adds below which a call runs on the calling thread alone.
    static let parallelWorkThreshold = 1 << 20

    /// One layer on contiguous batch-major `[N, L, E]` rows: `input` to `output` (distinct).
    ///
    /// Self-attention runs on the engine's `MultiheadAttention` over views of the buffers; then
    /// each tile of up to `rowBlock` rows does the rest in cache: residual, norms, `linear1`, the
    /// activation and `linear2` (whose GEMM accumulates onto the residual). Every row is computed
    /// by one tile in a fixed order, so the bits do not depend on the thread count.
    func run(_ plan: EncoderPlan, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
             scratch: EncoderScratch) throws {
        let c = config
        let E = c.dModel, F = c.dimFeedforward
        let first = linear1.packed(), second = linear2.packed()
        let p1 = norm1.snapshot(), p2 = norm2.snapshot()
        let executor = engine.executor
        let rowCount = plan.computedRowCount
        let work = rowCount.multipliedReportingOverflow(by: E &* F &* 2)
        let parallel = work.overflow || work.partialValue >= Self.parallelWorkThreshold
        let block = Self.rowBlock

        // 1. Self-attention (on norm1(x) when norm_first).
        var attentionInput = input
        if c.normFirst {
            let normed = scratch.normed
            executor.run(tiles: (plan.rowCount + block - 1) / block, parallel: parallel) { tile, _ in
                let range = tile * block ..< min((tile + 1) * block, plan.rowCount)
                LayerNorm.normalizeRows(input + range.lowerBound * E, rows: range.count, d: E, p1,
                                        into: normed + range.lowerBound * E)
            }
            attentionInput = UnsafePointer(normed)
        }
        let (shape, strides) = plan.attentionShape(batchFirst: c.batchFirst)
        let view = TensorView(base: UnsafeRawPointer(attentionInput), element: .float32, shape: shape, strides: strides)
        try selfAttn.forward(query: view, key: view, value: view, keyPaddingMask: plan.keyPaddingMask, attnMask: plan.srcMask,
                             options: ForwardOptions(needWeights: false, isCausal: plan.isCausal),
                             output: MutableTensorView(base: scratch.attention, shape: shape, strides: strides), weights: nil)

        // 2. Residual, norms and feed-forward, one row block per tile.
        if plan.rows != nil { output.update(repeating: 0, count: plan.rowCount * E) }
        let attention = UnsafePointer(scratch.attention)
        let activation = c.activation
        let normFirst = c.normFirst
        engine.withWorkspaces { workspaces in
            executor.run(tiles: (rowCount + block - 1) / block, parallel: parallel) { tile, worker in
                let range = tile * block ..< min((tile + 1) * block, rowCount)
                let m = range.count
                let h = scratch.workers + worker * scratch.floatsPerWorker
                let hidden = h + block * E
                let normed = hidden + block * F
                let geluScratch = normed + block * E
                for i in 0..<m {
                    let r = plan.rows.map { Int($0[range.lowerBound + i]) } ?? range.lowerBound + i
                    let x = input + r * E, a = attention + r * E, row = h + i * E
                    for j in 0..<E { row[j] = x[j] + a[j] }
                }
                let gemm = workspaces[worker].gemm
                let feedForwardInput: UnsafeMutablePointer<Float>
                if normFirst {
                    LayerNorm.normalizeRows(h, rows: m, d: E, p2, into: normed)
                    feedForwardInput = normed
                } else {
                    LayerNorm.normalizeRows(h, rows: m, d: E, p1, into: h)
                    feedForwardInput = h
                }
                first.apply(MatrixView(base: feedForwardInput, rows: m, cols: E, rowStride: E),
                            into: MutableMatrixView(base: hidden, rows: m, cols: F, rowStride: F), workspace: gemm)
                activation.apply(hidden, count: m * F, scratch: geluScratch)
                second.apply(MatrixView(base: hidden, rows: m, cols: F, rowStride: F),
                             into: MutableMatrixView(base: h, rows: m, cols: E, rowStride: E), accumulate: true, workspace: gemm)
                if !normFirst {
                    LayerNorm.normalizeRows(h, rows: m, d: E, p2, into: h)
                }
                for i in 0..<m {
                    let r = plan.rows.map { Int($0[range.lowerBound + i]) } ?? range.lowerBound + i
                    (output + r * E).update(from: h + i * E, count: E)
                }
            }
        }
    }
}

extension TransformerEncoderLayer {
    /// Runs the layer on strided views, writing into caller-owned memory (the C and Python path).
    ///
    /// - Parameters:
    ///   - src: `[L, N, E]` (`[N, L, E]` with batchFirst) or unbatched `[L, E]`, float32, any strides.
    ///   - srcMask: `[L, L]` or `[N * nhead, L, L]`, bool (true = masked) or float32 (added), or nil.
    ///   - srcKeyPaddingMask: `[N, L]` (unbatched `[L]`), bool or float32, or nil.
    ///   - isCausal: a hint with `srcMask`; without it, a top-left causal mask (see README).
    ///   - output: the shape of `src`, any strides; every position is computed, padded ones included.
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(src: TensorView, srcMask: TensorView? = nil, srcKeyPaddingMask: TensorView? = nil,
                        isCausal: Bool = false, output: MutableTensorView) throws {
        let plan = try EncoderPlan.make(src: src, mask: srcMask, keyPaddingMask: srcKeyPaddingMask, isCausal: isCausal,
                                        dModel: config.dModel, nhead: config.nhead, batchFirst: config.batchFirst,
                                        maskName: "src_mask")
        try checkOutput(output, like: src)
        let scratch = EncoderScratch(rows: plan.rowCount, E: config.dModel, dimFeedforward: config.dimFeedforward,
                                     threads: engine.threadCount)
        plan.gather(src, batchFirst: config.batchFirst, into: scratch.first)
        try run(plan, input: scratch.first, output: scratch.second, scratch: scratch)
        plan.scatter(scratch.second, into: output, batchFirst: config.batchFirst)
    }

    /// Runs the layer on a tensor; returns a tensor shaped like `src`.
    public func forward(_ src: Tensor<Float>, srcMask: Mask? = nil, srcKeyPaddingMask: Mask? = nil,
                        isCausal: Bool = false) throws -> Tensor<Float> {
        try runOnTensors(src, srcMask, srcKeyPaddingMask) { s, m, k, o in
            try forward(src: s, srcMask: m, srcKeyPaddingMask: k, isCausal: isCausal, output: o)
        }
    }

    /// Callable like the PyTorch module: `try layer(src, srcKeyPaddingMask: .bool(padding))`.
    public func callAsFunction(_ src: Tensor<Float>, srcMask: Mask? = nil, srcKeyPaddingMask: Mask? = nil,
                               isCausal: Bool = false) throws -> Tensor<Float> {
        try forward(src, srcMask: srcMask, srcKeyPaddingMask: srcKeyPaddingMask, isCausal: isCausal)
    }
}

/// Checks that `output` has `src`'s shape and one stride per dimension.
func checkOutput(_ output: MutableTensorView, like src: TensorView) throws {
    guard output.shape == src.shape, output.strides.count == output.shape.count else {
        throw MultiheadError.shape("output must have the shape of src \(src.shape), got \(output.shape) with \(output.strides.count) strides")
    }
}

/// Runs a view-based forward on tensors, returning a tensor shaped like `src`.
func runOnTensors(_ src: Tensor<Float>, _ mask: Mask?, _ keyPaddingMask: Mask?,
                  _ body: (TensorView, TensorView?, TensorView?, MutableTensorView) throws -> Void) throws -> Tensor<Float> {
    var result = [Float](repeating: 0, count: src.scalars.count)
    try src.withView { s in
        try mask.withView { m in
            try keyPaddingMask.withView { k in
                try result.withUnsafeMutableBufferPointer { buffer in
                    let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!
                    try body(s, m, k, MutableTensorView(base: base, shape: src.shape, strides: src.strides))
                }
            }
        }
    }
    return Tensor(uncheckedShape: src.shape, scalars: result)
}
