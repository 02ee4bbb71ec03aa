import Foundation
import MultiheadKernels

/// Memory an encoder forward call needs, shared by its layers, and reused from call to call
/// (fresh pages cost a fault each: a few percent of a BERT forward).
final class EncoderScratch: @unchecked Sendable {
    /// `[R, E]` attention outputs.
    let attention: UnsafeMutablePointer<Float>
    /// `[R, E]`: the ping-pong buffers between layers, and the pre-norm layers' `norm1(x)`.
    let first: UnsafeMutablePointer<Float>
    let second: UnsafeMutablePointer<Float>
    let normed: UnsafeMutablePointer<Float>
    /// One `floatsPerWorker` slice per worker: a row block's `h`, hidden and normed rows.
    let workers: UnsafeMutablePointer<Float>
    let floatsPerWorker: Int
    /// What it was made for: it serves any call needing no more.
    let rows: Int, E: Int, dimFeedforward: Int, threads: Int

    private init(rows: Int, E: Int, dimFeedforward: Int, threads: Int) {
        let block = TransformerEncoderLayer.rowBlock
        let size = max(rows * E, 1)
        attention = .allocate(capacity: size)
        first = .allocate(capacity: size)
        second = .allocate(capacity: size)
        normed = .allocate(capacity: size)
        floatsPerWorker = block * (2 * E + dimFeedforward) + 2 * GELU.chunk
        workers = .allocate(capacity: threads * floatsPerWorker)
        (self.rows, self.E, self.dimFeedforward, self.threads) = (rows, E, dimFeedforward, threads)
    }

    deinit {
        attention.deallocate()
        first.deallocate()
        second.deallocate()
        normed.deallocate()
        workers.deallocate()
    }

    var bytes: Int { (4 * max(rows * E, 1) + threads * floatsPerWorker) * MemoryLayout<Float>.size }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var idle: [EncoderScratch] = []
    /// Idle scratch kept for later calls: at most this many, each at most `keptBytes`.
    private static let keptCount = 2
    private static let keptBytes = 96 << 20

    /// Lends scratch for `rows` rows of `E` features for the duration of `body`.
    static func with<R>(rows: Int, E: Int, dimFeedforward: Int, threads: Int,
                        _ body: (EncoderScratch) throws -> R) rethrows -> R {
        let reused: EncoderScratch? = lock.withLock {
            guard let index = idle.firstIndex(where: {
                $0.E == E && $0.rows >= rows && $0.dimFeedforward >= dimFeedforward && $0.threads >= threads
            }) else { return nil }
            return idle.remove(at: index)
        }
        let scratch = reused ?? EncoderScratch(rows: rows, E: E, dimFeedforward: dimFeedforward, threads: threads)
        defer {
            if scratch.bytes <= keptBytes {
                lock.withLock {
                    idle.append(scratch)
                    if idle.count > keptCount { idle.sort { $0.bytes > $1.bytes }; idle.removeLast() }
                }
            }
        }
        return try body(scratch)
    }
}

extension TransformerEncoderLayer {
    /// Most rows per feed-forward tile: a multiple of every micro-kernel's MR; the tile's hidden
    /// rows (`64 x dim_feedforward`) stay in L2. (Measured on Zen 4, MiniLM: 64, 128 and 256 run
    /// within 1% of each other.)
    static let rowBlock = 64

    /// Rows per tile for `rows` rows on `threads` workers: `rowBlock`, or fewer (a multiple of 16)
    /// so that small batches still give every worker about four tiles. Any split gives the same
    /// bits (each row is computed alone, in a fixed order).
    static func rowBlock(rows: Int, threads: Int) -> Int {
        let perTile = (rows + 4 * threads - 1) / (4 * threads)
        return min(rowBlock, max(16, (perTile + 15) / 16 * 16))
    }
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
        let block = Self.rowBlock(rows: rowCount, threads: parallel ? engine.threadCount : 1)

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
                // Slices sized for the largest block.
                let h = scratch.workers + worker * scratch.floatsPerWorker
                let hidden = h + Self.rowBlock * E
                let normed = hidden + Self.rowBlock * F
                let geluScratch = normed + Self.rowBlock * E
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
        try EncoderScratch.with(rows: plan.rowCount, E: config.dModel, dimFeedforward: config.dimFeedforward,
                                threads: engine.threadCount) { scratch in
            plan.gather(src, batchFirst: config.batchFirst, into: scratch.first)
            try run(plan, input: scratch.first, output: scratch.second, scratch: scratch)
            plan.scatter(scratch.second, into: output, batchFirst: config.batchFirst)
        }
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
