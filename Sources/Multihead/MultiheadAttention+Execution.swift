import Foundation
import MultiheadKernels
import MultiheadRuntime

extension MultiheadAttention {
    /// Output-projection columns per tile: wide, so the attended rows are packed few times;
    /// rows per tile are `ProjectionJob.rowBlock`.
    static let outputColumnBlock = 256

    /// Output-projection tiles per batch: row blocks x column blocks.
    static func outputBlocks(L: Int, E: Int) -> (rows: Int, columns: Int) {
        ((L + ProjectionJob.rowBlock - 1) / ProjectionJob.rowBlock, (E + outputColumnBlock - 1) / outputColumnBlock)
    }
    /// Multiply-adds below which a call runs on the calling thread alone.
    static let parallelWorkThreshold = 1 << 20

    /// Executes a checked plan: input projections into `ProjectionBuffers`, fused
    /// attention per (batch, head, query block) into `[N, L, E]`, then the output projection and
    /// (when asked) the weights. Each output element is written by exactly one tile.
    ///
    /// Every phase is a batch-major `TileSpace`, so the node that owns a batch range runs all of
    /// its tiles: it first touches, and so places on its own memory, that range of the scratch
    /// buffers and the output; tiles read the packed weights of their own node (`local(worker:)`).
    func run(_ plan: ForwardPlan, output: MutableTensorView, weights: MutableTensorView?) {
        let c = config
        let (N, L, S, H, D, E) = (plan.N, plan.L, plan.S, c.numHeads, c.headDim, c.embedDim)
        let keyCount = plan.keyCount
        let packed = packedParameters()
        let executor = engine.executor
        // Below about a million multiply-adds, waking workers costs more than it saves.
        let work = N.multipliedReportingOverflow(by: L &* E &* (c.qdim + E) &+ S &* E &* (c.kdim + c.vdim) &+ 2 &* L &* keyCount &* E)
        let parallel = work.overflow || work.partialValue < 0 || work.partialValue >= Self.parallelWorkThreshold
        let buffers = ProjectionBuffers(N: N, L: L, keyCount: keyCount, E: E,
                                        fused: plan.selfAttention && c.packedInputProjection)
        let attended = UnsafeMutablePointer<Float>.allocate(capacity: max(N * L * E, 1))
        let statistics = weights == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * L * 2, 1))
        defer {
            buffers.deallocate(); attended.deallocate(); statistics?.deallocate()
        }
        engine.withWorkspaces { workspaces in
            // 1. Projections, one (job, batch, row block) tile each.
            let jobsPerCopy = (0..<packed.copyCount).map { projectionJobs(plan, packed.copy($0), buffers) }
            let jobs = jobsPerCopy[0]
            let tilesPerJob = jobs.map { N * $0.blocksPerBatch }
            let projectionSpace = TileSpace(segments: jobs.map { .init(batches: N, tilesPerBatch: $0.blocksPerBatch) })
            executor.run(projectionSpace, parallel: parallel) { tile, worker in
                var index = tile, j = 0
                while index >= tilesPerJob[j] { index -= tilesPerJob[j]; j += 1 }
                let (n, block) = index.quotientAndRemainder(dividingBy: jobs[j].blocksPerBatch)
                jobsPerCopy[packed.copyIndex(worker: worker)][j].run(batch: n, block: block, bias: packed.inputBias,
                                                                     workspace: workspaces[worker].gemm)
            }
            appendExtraKeys(plan, packed, buffers)

            // 2. Attention, one (batch, head, query block) tile each.
            let blocks = (L + FlashAttention.blockQueries - 1) / FlashAttention.blockQueries
            // With several query blocks, pack each head's keys
            // and values once instead of once per query block.
            let problems = UnsafeMutableBufferPointer<AttentionProblem>.allocate(capacity: N * H)
            defer { problems.deallocate() }
            let prepack = L > FlashAttention.blockQueries
            executor.run(TileSpace(batches: N, tilesPerBatch: H), parallel: parallel && prepack) { nh, _ in
                let (n, h) = nh.quotientAndRemainder(dividingBy: H)
                let b = buffers
                var problem = AttentionProblem(
                    q: b.q + n * b.qBatchStride + h * D, k: b.k + n * b.kBatchStride + h * D,
                    v: b.v + n * b.vBatchStride + h * D, qRowStride: b.qRowStride, kRowStride: b.kRowStride,
                    vRowStride: b.vRowStride, queryCount: L, keyCount: keyCount, headDim: D, maskedKeys: S,
                    causal: plan.causal, attnMask: plan.attnMask?.kernelView(batch: n, head: h),
                    paddingMask: plan.paddingMask?.kernelView(batch: n, head: 0))
                if prepack { FlashAttention.packKeysAndValues(&problem, cacheSizes: engine.cacheSizes) }
                (problems.baseAddress! + nh).initialize(to: problem)
            }
            defer { _ = problems.baseAddress!.deinitialize(count: N * H) }
            func problem(_ n: Int, _ h: Int) -> AttentionProblem { problems[n * H + h] }
            func queryBlock(_ b: Int) -> Range<Int> {
                b * FlashAttention.blockQueries ..< min((b + 1) * FlashAttention.blockQueries, L)
            }
            executor.run(TileSpace(batches: N, tilesPerBatch: H * blocks), parallel: parallel) { tile, worker in
                let (nh, block) = tile.quotientAndRemainder(dividingBy: blocks)
                let (n, h) = nh.quotientAndRemainder(dividingBy: H)
                FlashAttention.attend(problem(n, h), queries: queryBlock(block), output: attended + n * L * E + h * D,
                                      outputRowStride: E, statistics: statistics.map { $0 + nh * L * 2 },
                                      workspace: workspaces[worker])
            }

            // 3. Output projection (batch, row block, column block) tiles, and weights (batch, query
            //    block) tiles.
            let (rowBlocks, columnBlocks) = Self.outputBlocks(L: L, E: E)
            let projectionTiles = N * rowBlocks * columnBlocks
            let outputSpace = TileSpace(segments: [.init(batches: N, tilesPerBatch: rowBlocks * columnBlocks)]
                + (weights == nil ? [] : [.init(batches: N, tilesPerBatch: blocks)]))
            executor.run(outputSpace, parallel: parallel) { tile, worker in
                let workspace = workspaces[worker]
                let local = packed.local(worker: worker)
                if tile < projectionTiles {
                    let (n, rest) = tile.quotientAndRemainder(dividingBy: rowBlocks * columnBlocks)
                    let (rowBlock, block) = rest.quotientAndRemainder(dividingBy: columnBlocks)
                    let rows = rowBlock * ProjectionJob.rowBlock ..< min((rowBlock + 1) * ProjectionJob.rowBlock, L)
                    let columns = block * Self.outputColumnBlock ..< min((block + 1) * Self.outputColumnBlock, E)
                    let a = MatrixView(base: attended + (n * L + rows.lowerBound) * E, rows: rows.count, cols: E, rowStride: E)
                    let (batchStride, rowStride, colStride) = Self.outputStrides(output, plan: plan, batchFirst: c.batchFirst)
                    let out = MutableMatrixView(
                        base: output.base + n * batchStride + rows.lowerBound * rowStride + columns.lowerBound * colStride,
                        rows: rows.count, cols: columns.count, rowStride: rowStride, colStride: colStride)
                    if let bias = local.outputBias {
                        bias.withUnsafeBufferPointer {
                            GEMM.multiply(a, local.output, columns: columns, bias: $0.baseAddress!, into: out, workspace: workspace.gemm)
                        }
                    } else {
                        GEMM.multiply(a, local.output, columns: columns, into: out, workspace: workspace.gemm)
                    }
                    return
                }
                guard let weights, let statistics else { return }
                let (n, block) = (tile - projectionTiles).quotientAndRemainder(dividingBy: blocks)
                let r = weights.strides.count
                let batchOffset = plan.batched ? n * weights.strides[0] : 0
                for h in 0..<H {
                    let headOffset = averageWeights(weights, plan) ? 0 : h * weights.strides[r - 3]
                    let view = MutableMatrixView(base: weights.base + batchOffset + headOffset, rows: L, cols: keyCount,
                                                 rowStride: weights.strides[r - 2], colStride: weights.strides[r - 1])
                    let average = averageWeights(weights, plan)
                    FlashAttention.weights(problem(n, h), queries: queryBlock(block),
                                           statistics: statistics + (n * H + h) * L * 2, into: view,
                                           scale: average ? 1 / Float(H) : 1, accumulate: average && h > 0,
                                           workspace: workspace)
                }
            }
        }
    }

    /// True when `weights` holds head-averaged `[.., L, S]` rather than per-head `[.., H, L, S]`.
    private func averageWeights(_ weights: MutableTensorView, _ plan: ForwardPlan) -> Bool {
        weights.shape.count == (plan.batched ? 3 : 2)
    }

    /// (batch, sequence, feature) strides of the output view.
    static func outputStrides(_ output: MutableTensorView, plan: ForwardPlan, batchFirst: Bool) -> (Int, Int, Int) {
        let s = output.strides
        if !plan.batched { return (0, s[0], s[1]) }
        return batchFirst ? (s[0], s[1], s[2]) : (s[1], s[0], s[2])
    }
}
