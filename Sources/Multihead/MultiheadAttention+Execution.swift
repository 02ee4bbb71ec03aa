import Foundation
import MultiheadKernels

extension MultiheadAttention {
    /// Output-projection columns per tile.
    static let outputColumnBlock = 64
    /// Multiply-adds below which a call runs on the calling thread alone.
    static let parallelWorkThreshold = 1 << 20

    /// Executes a checked plan: input projections into head-major `[N, H, L|S, D]` buffers, fused
    /// attention per (batch, head, query block) into `[N, L, E]`, then the output projection and
    /// (when asked) the weights. Each output element is written by exactly one tile.
    func run(_ plan: ForwardPlan, output: MutableTensorView, weights: MutableTensorView?) {
        let c = config
        let (N, L, S, H, D, E) = (plan.N, plan.L, plan.S, c.numHeads, c.headDim, c.embedDim)
        let keyCount = plan.keyCount
        let packed = packedParameters()
        let executor = engine.executor
        // Below about a million multiply-adds, waking workers costs more than it saves.
        let work = N.multipliedReportingOverflow(by: L &* E &* (c.qdim + E) &+ S &* E &* (c.kdim + c.vdim) &+ 2 &* L &* keyCount &* E)
        let parallel = work.overflow || work.partialValue < 0 || work.partialValue >= Self.parallelWorkThreshold
        let q = UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * L * D, 1))
        let k = UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * keyCount * D, 1))
        let v = UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * keyCount * D, 1))
        let attended = UnsafeMutablePointer<Float>.allocate(capacity: max(N * L * E, 1))
        let statistics = weights == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: max(N * H * L * 2, 1))
        defer {
            q.deallocate(); k.deallocate(); v.deallocate(); attended.deallocate(); statistics?.deallocate()
        }
        engine.withWorkspaces { workspaces in
            // 1. Projections, one (batch, head, which) tile each.
            let scale = 1 / Float(D).squareRoot()
            executor.run(tiles: N * H * 3, parallel: parallel) { tile, worker in
                let (nh, which) = tile.quotientAndRemainder(dividingBy: 3)
                let (n, h) = nh.quotientAndRemainder(dividingBy: H)
                let columns = h * D ..< (h + 1) * D
                let gemm = workspaces[worker].gemm
                func project(_ input: SequenceInput, rows: Int, features: Int, _ weight: PackedMatrix, biasOffset: Int,
                             scale: Float, into dest: UnsafeMutablePointer<Float>) {
                    let a = input.matrix(n, rows: rows, cols: features)
                    let out = MutableMatrixView(base: dest, rows: rows, cols: D, rowStride: D)
                    if let bias = packed.inputBias {
                        bias.withUnsafeBufferPointer {
                            GEMM.multiply(a, weight, columns: columns, bias: $0.baseAddress! + biasOffset, scale: scale, into: out, workspace: gemm)
                        }
                    } else {
                        GEMM.multiply(a, weight, columns: columns, scale: scale, into: out, workspace: gemm)
                    }
                }
                switch which {
                case 0:
                    project(plan.query, rows: L, features: c.qdim, packed.query, biasOffset: 0, scale: scale, into: q + nh * L * D)
                case 1:
                    let dest = k + nh * keyCount * D
                    project(plan.key, rows: S, features: c.kdim, packed.key, biasOffset: E, scale: 1, into: dest)
                    Self.appendExtraKeys(dest + S * D, packed.biasK, head: h, D: D, zeroAttn: c.addZeroAttn)
                default:
                    let dest = v + nh * keyCount * D
                    project(plan.value, rows: S, features: c.vdim, packed.value, biasOffset: 2 * E, scale: 1, into: dest)
                    Self.appendExtraKeys(dest + S * D, packed.biasV, head: h, D: D, zeroAttn: c.addZeroAttn)
                }
            }

            // 2. Attention, one (batch, head, query block) tile each.
            let blocks = (L + FlashAttention.blockQueries - 1) / FlashAttention.blockQueries
            func problem(_ n: Int, _ h: Int) -> AttentionProblem {
                let nh = n * H + h
                return AttentionProblem(
                    q: q + nh * L * D, k: k + nh * keyCount * D, v: v + nh * keyCount * D,
                    queryCount: L, keyCount: keyCount, headDim: D, maskedKeys: S, causal: plan.causal,
                    attnMask: plan.attnMask?.kernelView(batch: n, head: h),
                    paddingMask: plan.paddingMask?.kernelView(batch: n, head: 0))
            }
            func queryBlock(_ b: Int) -> Range<Int> {
                b * FlashAttention.blockQueries ..< min((b + 1) * FlashAttention.blockQueries, L)
            }
            executor.run(tiles: N * H * blocks, parallel: parallel) { tile, worker in
                let (nh, block) = tile.quotientAndRemainder(dividingBy: blocks)
                let (n, h) = nh.quotientAndRemainder(dividingBy: H)
                FlashAttention.attend(problem(n, h), queries: queryBlock(block), output: attended + n * L * E + h * D,
                                      outputRowStride: E, statistics: statistics.map { $0 + nh * L * 2 },
                                      workspace: workspaces[worker])
            }

            // 3. Output projection (batch, column block) tiles, and weights (batch, query block) tiles.
            let columnBlocks = (E + Self.outputColumnBlock - 1) / Self.outputColumnBlock
            let projectionTiles = N * columnBlocks
            let weightTiles = weights == nil ? 0 : N * blocks
            executor.run(tiles: projectionTiles + weightTiles, parallel: parallel) { tile, worker in
                let workspace = workspaces[worker]
                if tile < projectionTiles {
                    let (n, block) = tile.quotientAndRemainder(dividingBy: columnBlocks)
                    let columns = block * Self.outputColumnBlock ..< min((block + 1) * Self.outputColumnBlock, E)
                    let a = MatrixView(base: attended + n * L * E, rows: L, cols: E, rowStride: E)
                    let (batchStride, rowStride, colStride) = Self.outputStrides(output, plan: plan, batchFirst: c.batchFirst)
                    let out = MutableMatrixView(base: output.base + n * batchStride + columns.lowerBound * colStride,
                                                rows: L, cols: columns.count, rowStride: rowStride, colStride: colStride)
                    if let bias = packed.outputBias {
                        bias.withUnsafeBufferPointer {
                            GEMM.multiply(a, packed.output, columns: columns, bias: $0.baseAddress!, into: out, workspace: workspace.gemm)
                        }
                    } else {
                        GEMM.multiply(a, packed.output, columns: columns, into: out, workspace: workspace.gemm)
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

    /// Writes the `bias_k`/`bias_v` row (head `h`'s slice) and the zero-attention row after the
    /// projected keys or values.
    static func appendExtraKeys(_ dest: UnsafeMutablePointer<Float>, _ bias: [Float]?, head h: Int, D: Int, zeroAttn: Bool) {
        var row = dest
        if let bias {
            for d in 0..<D { row[d] = bias[h * D + d] }
            row += D
        }
        if zeroAttn {
            row.update(repeating: 0, count: D)
        }
    }
}
