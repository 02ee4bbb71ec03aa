import MultiheadKernels

/// Where the projected queries, keys and values of one group of heads live: row-major
/// `[N, rows, W]` per role (or one `[N, rows, 3W]` buffer for self-attention), where `W` is the
/// group's width (`E` when one group holds every head). The group's head `g` is in columns
/// `g*D ..< (g+1)*D`, so the attention kernel reads a head as a strided `[rows, D]` view and no
/// transpose copy is made.
struct ProjectionBuffers {
    /// Base pointers of the query, key and value columns of batch 0, row 0.
    var q, k, v: UnsafeMutablePointer<Float>
    /// Distance between rows, and between batches, for each role.
    var qRowStride, kRowStride, vRowStride: Int
    var qBatchStride, kBatchStride, vBatchStride: Int
    private var storage: [UnsafeMutablePointer<Float>]

    /// - Parameters:
    ///   - E: the group's width `W`.
    ///   - fused: one buffer of `[N, keyCount, 3W]` (self-attention: `L == S`).
    init(N: Int, L: Int, keyCount: Int, E: Int, fused: Bool) {
        if fused {
            let rows = max(L, keyCount)
            let all = UnsafeMutablePointer<Float>.allocate(capacity: max(N * rows * 3 * E, 1))
            storage = [all]
            (q, k, v) = (all, all + E, all + 2 * E)
            (qRowStride, kRowStride, vRowStride) = (3 * E, 3 * E, 3 * E)
            (qBatchStride, kBatchStride, vBatchStride) = (rows * 3 * E, rows * 3 * E, rows * 3 * E)
        } else {
            q = .allocate(capacity: max(N * L * E, 1))
            k = .allocate(capacity: max(N * keyCount * E, 1))
            v = .allocate(capacity: max(N * keyCount * E, 1))
            storage = [q, k, v]
            (qRowStride, kRowStride, vRowStride) = (E, E, E)
            (qBatchStride, kBatchStride, vBatchStride) = (L * E, keyCount * E, keyCount * E)
        }
    }

    func deallocate() { storage.forEach { $0.deallocate() } }
}

/// One input projection: `dest[n] = input[n] * W^T[:, columns] + bias[columns]`, in row blocks.
struct ProjectionJob {
    var input: SequenceInput
    var rows: Int
    var features: Int
    var weight: PackedMatrix
    var columns: Range<Int>
    /// Index of `columns.lowerBound` in the `[3E]` input bias.
    var biasOffset: Int
    var dest: UnsafeMutablePointer<Float>
    var destRowStride: Int
    var destBatchStride: Int

    /// Rows per tile: enough to amortise packing the weight panel, small enough to spread work.
    static let rowBlock = 128

    var blocksPerBatch: Int { (rows + Self.rowBlock - 1) / Self.rowBlock }

    func run(batch n: Int, block: Int, bias: [Float]?, workspace: GEMMWorkspace) {
        let r0 = block * Self.rowBlock
        let count = min(Self.rowBlock, rows - r0)
        var a = input.matrix(n, rows: count, cols: features)
        a.base += r0 * input.sequenceStride
        let out = MutableMatrixView(base: dest + n * destBatchStride + r0 * destRowStride, rows: count,
                                    cols: columns.count, rowStride: destRowStride)
        if let bias {
            bias.withUnsafeBufferPointer {
                GEMM.multiply(a, weight, columns: columns, bias: $0.baseAddress! + biasOffset - columns.lowerBound,
                              into: out, workspace: workspace)
            }
        } else {
            GEMM.multiply(a, weight, columns: columns, into: out, workspace: workspace)
        }
    }
}

extension MultiheadAttention {
    /// The projections of the heads in `columns` (a range of `0..<E`, whole heads): one fused
    /// job when self-attention with a packed `in_proj_weight` projects every head, else one job
    /// per role, each over its own columns of the packed weight.
    func projectionJobs(_ plan: ForwardPlan, _ packed: PackedParameters, _ buffers: ProjectionBuffers,
                        columns: Range<Int>) -> [ProjectionJob] {
        let c = config
        let E = c.embedDim
        if plan.selfAttention && c.packedInputProjection && columns.count == E {
            return [ProjectionJob(input: plan.query, rows: plan.L, features: E, weight: packed.query, columns: 0 ..< 3 * E,
                                  biasOffset: 0, dest: buffers.q, destRowStride: buffers.qRowStride,
                                  destBatchStride: buffers.qBatchStride)]
        }
        let c0 = columns.lowerBound, w = columns.count
        return [
            ProjectionJob(input: plan.query, rows: plan.L, features: c.qdim, weight: packed.query,
                          columns: packed.queryColumn + c0 ..< packed.queryColumn + c0 + w, biasOffset: c0,
                          dest: buffers.q, destRowStride: buffers.qRowStride, destBatchStride: buffers.qBatchStride),
            ProjectionJob(input: plan.key, rows: plan.S, features: c.kdim, weight: packed.key,
                          columns: packed.keyColumn + c0 ..< packed.keyColumn + c0 + w, biasOffset: E + c0,
                          dest: buffers.k, destRowStride: buffers.kRowStride, destBatchStride: buffers.kBatchStride),
            ProjectionJob(input: plan.value, rows: plan.S, features: c.vdim, weight: packed.value,
                          columns: packed.valueColumn + c0 ..< packed.valueColumn + c0 + w, biasOffset: 2 * E + c0,
                          dest: buffers.v, destRowStride: buffers.vRowStride, destBatchStride: buffers.vBatchStride),
        ]
    }

    /// Writes the `bias_k`/`bias_v` rows and the zero-attention rows after the `S` projected keys
    /// and values of every batch, for the heads in `columns`.
    func appendExtraKeys(_ plan: ForwardPlan, _ packed: PackedParameters, _ b: ProjectionBuffers, columns: Range<Int>) {
        let E = columns.count
        guard packed.biasK != nil || config.addZeroAttn else { return }
        func append(_ dest: UnsafeMutablePointer<Float>, _ rowStride: Int, _ batchStride: Int, _ bias: [Float]?) {
            for n in 0..<plan.N {
                var row = dest + n * batchStride + plan.S * rowStride
                if let bias {
                    bias.withUnsafeBufferPointer { row.update(from: $0.baseAddress! + columns.lowerBound, count: E) }
                    row += rowStride
                }
                if config.addZeroAttn { row.update(repeating: 0, count: E) }
            }
        }
        append(b.k, b.kRowStride, b.kBatchStride, packed.biasK)
        append(b.v, b.vRowStride, b.vBatchStride, packed.biasV)
    }
}
