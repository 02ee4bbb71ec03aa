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

    /// Executes a checked plan: input projections into `ProjectionBuffers`, fused attention per
    /// (batch, head, query block) into `[N, L, W]`, then the output projection and (when asked,
    /// unless the attention tiles wrote them) the weights.
    ///
    /// Heads run in groups (`headsPerGroup`): all of them at once unless that scratch would pass
    /// the engine's `scratchLimit`. Each group projects, attends and then adds its share of the
    /// output projection (`attended[:, group columns] * W^T[group rows, :]`); the first group
    /// writes the output (with the bias), the others add to it, in order. Within a group each
    /// output element is written by exactly one tile.
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
        let groupSize = headsPerGroup(plan)
        let width = groupSize * D
        let buffers = ProjectionBuffers(N: N, L: L, keyCount: keyCount, E: width,
                                        fused: plan.selfAttention && c.packedInputProjection)
        let attended = UnsafeMutablePointer<Float>.allocate(capacity: max(N * L * width, 1))
        let blocks = (L + FlashAttention.blockQueries - 1) / FlashAttention.blockQueries
        // Weights written by the attention tiles themselves (no second pass over the scores) when
        // every key fits one block; the tiles are then (batch, query block) running the heads in
        // order, so head averaging adds in the same order as the separate pass: the same bits. Used
        // when those tiles are enough to keep the workers busy.
        let fusedWeights = weights != nil && Self.weightsFromAttentionTiles(
            N: N, queryBlocks: blocks, keyCount: keyCount, parallel: parallel, threads: engine.threadCount)
        let statistics = weights == nil || fusedWeights ? nil
            : UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * L * 2, 1))
        defer {
            buffers.deallocate(); attended.deallocate(); statistics?.deallocate()
        }
        func queryBlock(_ b: Int) -> Range<Int> {
            b * FlashAttention.blockQueries ..< min((b + 1) * FlashAttention.blockQueries, L)
        }
        let (rowBlocks, columnBlocks) = Self.outputBlocks(L: L, E: E)
        let projectionTiles = N * rowBlocks * columnBlocks
        let (batchStride, rowStride, colStride) = Self.outputStrides(output, plan: plan, batchFirst: c.batchFirst)
        let problems = UnsafeMutableBufferPointer<AttentionProblem>.allocate(capacity: N * groupSize)
        defer { problems.deallocate() }

        engine.withWorkspaces { workspaces in
            for h0 in stride(from: 0, to: H, by: groupSize) {
                let heads = h0 ..< min(h0 + groupSize, H)
                let columns = h0 * D ..< heads.upperBound * D
                let G = heads.count
                // The output weight rows of this group: the packed `W^T` itself when the group is
                // every head, else those rows packed for this call.
                let outputSlice: PackedMatrix? = G == H ? nil : packed.outputWeight.withUnsafeBufferPointer {
                    PackedMatrix(MatrixView(base: $0.baseAddress! + columns.lowerBound, rows: columns.count, cols: E,
                                            rowStride: 1, colStride: E), cacheSizes: engine.cacheSizes)
                }

                // 1. Projections, one (job, batch, row block) tile each.
                let jobsPerCopy = (0..<packed.copyCount).map { projectionJobs(plan, packed.copy($0), buffers, columns: columns) }
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
                appendExtraKeys(plan, packed, buffers, columns: columns)

                // 2. Attention, one (batch, head, query block) tile each. With several query
                //    blocks, pack each head's keys and values once instead of once per query block.
                let prepack = L > FlashAttention.blockQueries
                executor.run(TileSpace(batches: N, tilesPerBatch: G), parallel: parallel && prepack) { ng, _ in
                    let (n, g) = ng.quotientAndRemainder(dividingBy: G)
                    let b = buffers
                    var problem = AttentionProblem(
                        q: b.q + n * b.qBatchStride + g * D, k: b.k + n * b.kBatchStride + g * D,
                        v: b.v + n * b.vBatchStride + g * D, qRowStride: b.qRowStride, kRowStride: b.kRowStride,
                        vRowStride: b.vRowStride, queryCount: L, keyCount: keyCount, headDim: D, maskedKeys: S,
                        causal: plan.causal, attnMask: plan.attnMask?.kernelView(batch: n, head: h0 + g),
                        paddingMask: plan.paddingMask?.kernelView(batch: n, head: 0))
                    if prepack { FlashAttention.packKeysAndValues(&problem, cacheSizes: engine.cacheSizes) }
                    (problems.baseAddress! + ng).initialize(to: problem)
                }
                defer { _ = problems.baseAddress!.deinitialize(count: N * G) }
                func problem(_ n: Int, _ h: Int) -> AttentionProblem { problems[n * G + h - h0] }
                if fusedWeights, let weights {
                    executor.run(TileSpace(batches: N, tilesPerBatch: blocks), parallel: parallel) { tile, worker in
                        let (n, block) = tile.quotientAndRemainder(dividingBy: blocks)
                        for g in 0..<G {
                            FlashAttention.attend(problems[n * G + g], queries: queryBlock(block),
                                                  output: attended + n * L * width + g * D, outputRowStride: width,
                                                  statistics: nil, weights: weightsOutput(weights, plan, batch: n, head: h0 + g),
                                                  workspace: workspaces[worker])
                        }
                    }
                } else {
                    executor.run(TileSpace(batches: N, tilesPerBatch: G * blocks), parallel: parallel) { tile, worker in
                        let (ng, block) = tile.quotientAndRemainder(dividingBy: blocks)
                        let (n, g) = ng.quotientAndRemainder(dividingBy: G)
                        FlashAttention.attend(problems[ng], queries: queryBlock(block), output: attended + n * L * width + g * D,
                                              outputRowStride: width, statistics: statistics.map { $0 + (n * H + h0 + g) * L * 2 },
                                              workspace: workspaces[worker])
                    }
                }

                // 3. Output projection (batch, row block, column block) tiles, and weights (batch,
                //    query block) tiles.
                let outputSpace = TileSpace(segments: [.init(batches: N, tilesPerBatch: rowBlocks * columnBlocks)]
                    + (statistics == nil ? [] : [.init(batches: N, tilesPerBatch: blocks)]))
                executor.run(outputSpace, parallel: parallel) { tile, worker in
                    let workspace = workspaces[worker]
                    let local = packed.local(worker: worker)
                    if tile < projectionTiles {
                        let (n, rest) = tile.quotientAndRemainder(dividingBy: rowBlocks * columnBlocks)
                        let (rowBlock, block) = rest.quotientAndRemainder(dividingBy: columnBlocks)
                        let rows = rowBlock * ProjectionJob.rowBlock ..< min((rowBlock + 1) * ProjectionJob.rowBlock, L)
                        let outColumns = block * Self.outputColumnBlock ..< min((block + 1) * Self.outputColumnBlock, E)
                        let a = MatrixView(base: attended + (n * L + rows.lowerBound) * width, rows: rows.count, cols: columns.count,
                                           rowStride: width)
                        let out = MutableMatrixView(
                            base: output.base + n * batchStride + rows.lowerBound * rowStride + outColumns.lowerBound * colStride,
                            rows: rows.count, cols: outColumns.count, rowStride: rowStride, colStride: colStride)
                        let weight = outputSlice ?? local.output
                        if h0 == 0, let bias = local.outputBias {
                            bias.withUnsafeBufferPointer {
                                GEMM.multiply(a, weight, columns: outColumns, bias: $0.baseAddress!, into: out,
                                              workspace: workspace.gemm)
                            }
                        } else {
                            GEMM.multiply(a, weight, columns: outColumns, accumulate: h0 > 0, into: out, workspace: workspace.gemm)
                        }
                        return
                    }
                    guard let weights, let statistics else { return }
                    let (n, block) = (tile - projectionTiles).quotientAndRemainder(dividingBy: blocks)
                    for h in heads {
                        let out = weightsOutput(weights, plan, batch: n, head: h)
                        FlashAttention.weights(problem(n, h), queries: queryBlock(block),
                                               statistics: statistics + (n * H + h) * L * 2, into: out.view,
                                               scale: out.scale, accumulate: out.accumulate, workspace: workspace)
                    }
                }
            }
        }
    }

    /// Heads per group of this call (`headsPerGroup(bytesPerHead:heads:limit:)` with the engine's limit).
    func headsPerGroup(_ plan: ForwardPlan) -> Int {
        let c = config
        guard let perHead = Self.scratchBytesPerHead(N: plan.N, L: plan.L, keyCount: plan.keyCount, headDim: c.headDim,
                                                     fusedProjection: plan.selfAttention && c.packedInputProjection)
        else { return 1 }  // unreachable: makePlan refused the call
        return Self.headsPerGroup(bytesPerHead: perHead, heads: c.numHeads, limit: engine.scratchLimit)
    }

    /// Heads per group: every head when their scratch fits `limit`, else as many as fit (at
    /// least one). Depends on the shapes and the limit only, never on threads.
    static func headsPerGroup(bytesPerHead: Int, heads H: Int, limit: Int) -> Int {
        if bytesPerHead == 0 { return H }
        return min(H, max(1, limit / bytesPerHead))
    }

    /// The scratch one head of a call needs: its columns of the projected queries, keys and
    /// values (one `[max(L, keyCount), 3D]` block for self-attention's fused projection), of the
    /// attention output, and its packed keys and values (packed once when there are several
    /// query blocks). Panel padding and the per-call statistics are not counted, so the limit is
    /// approximate by that much. Nil when the count overflows.
    static func scratchBytesPerHead(N: Int, L: Int, keyCount: Int, headDim: Int, fusedProjection: Bool) -> Int? {
        // Rows of D floats: 3 max(L, keyCount) or L + 2 keyCount projected, L attended, 2 keyCount packed.
        let (keys2, o1) = keyCount.multipliedReportingOverflow(by: 2)
        let (projected, o2) = fusedProjection ? max(L, keyCount).multipliedReportingOverflow(by: 3) : L.addingReportingOverflow(keys2)
        let (withOutput, o3) = projected.addingReportingOverflow(L)
        let (rows, o4) = withOutput.addingReportingOverflow(L > FlashAttention.blockQueries ? keys2 : 0)
        if o1 || o2 || o3 || o4 { return nil }
        return try? checkedProduct([N, rows, headDim, MemoryLayout<Float>.size], "")
    }

    /// Whether the attention tiles write the weights themselves (every key in one block, and
    /// enough (batch, query block) tiles for the workers); else a second pass does. Same bits.
    static func weightsFromAttentionTiles(N: Int, queryBlocks: Int, keyCount: Int, parallel: Bool, threads: Int) -> Bool {
        keyCount <= FlashAttention.blockKeys && (!parallel || N * queryBlocks >= 2 * threads)
    }

    /// Where head `h` of batch `n` writes its weights: its own `[L, S]` slice, or (averaged) the
    /// batch's, scaled by `1/H` and added after head 0.
    private func weightsOutput(_ weights: MutableTensorView, _ plan: ForwardPlan, batch n: Int, head h: Int)
        -> FlashAttention.WeightsOutput {
        let r = weights.strides.count
        let average = averageWeights(weights, plan)
        let offset = (plan.batched ? n * weights.strides[0] : 0) + (average ? 0 : h * weights.strides[r - 3])
        let view = MutableMatrixView(base: weights.base + offset, rows: plan.L, cols: plan.keyCount,
                                     rowStride: weights.strides[r - 2], colStride: weights.strides[r - 1])
        return .init(view: view, scale: average ? 1 / Float(config.numHeads) : 1, accumulate: average && h > 0)
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
