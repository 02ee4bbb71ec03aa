import MultiheadKernels

/// Options of a forward call, with PyTorch's defaults.
public struct ForwardOptions: Sendable, Equatable {
    public var needWeights: Bool
    public var averageAttnWeights: Bool
    /// With `attnMask` nil: apply a top-left causal mask. With `attnMask`: a promise that the mask
    /// is causal, as in PyTorch: the mask is applied and the causal structure is assumed too, so
    /// key blocks after the queries are skipped.
    public var isCausal: Bool

    public init(needWeights: Bool = true, averageAttnWeights: Bool = true, isCausal: Bool = false) {
        self.needWeights = needWeights
        self.averageAttnWeights = averageAttnWeights
        self.isCausal = isCausal
    }
}

/// A strided 3-D float32 input `[N, seq, features]`, whatever layout the caller used.
struct SequenceInput {
    var base: UnsafePointer<Float>
    var batchStride: Int
    var sequenceStride: Int
    var featureStride: Int

    /// Batch `n` as a matrix `[seq x features]`.
    func matrix(_ n: Int, rows: Int, cols: Int) -> MatrixView {
        MatrixView(base: base + n * batchStride, rows: rows, cols: cols, rowStride: sequenceStride, colStride: featureStride)
    }
}

/// A mask as the kernels read it: strides for (batch*head or head, query, key); 0 when broadcast.
struct MaskInput {
    var view: TensorView
    var batchStride: Int
    var headStride: Int
    var rowStride: Int
    var colStride: Int

    func kernelView(batch n: Int, head h: Int) -> AttentionMaskView {
        let offset = n * batchStride + h * headStride
        switch view.element {
        case .float32:
            return AttentionMaskView(storage: .float(view.floats + offset), rowStride: rowStride, colStride: colStride)
        case .bool:
            return AttentionMaskView(storage: .bool(view.base.assumingMemoryBound(to: UInt8.self) + offset),
                                     rowStride: rowStride, colStride: colStride)
        }
    }
}

/// A forward call resolved to sizes and strides: everything checked, nothing left to trap on.
struct ForwardPlan {
    var batched: Bool
    var N: Int, L: Int, S: Int
    /// Keys after `bias_k` and the zero-attention key are appended.
    var keyCount: Int
    var query, key, value: SequenceInput
    var attnMask: MaskInput?
    var paddingMask: MaskInput?
    var causal: Bool
    /// Query, key and value are the same view: one projection product serves all three.
    var selfAttention: Bool
    var outputShape: [Int]
    var weightsShape: [Int]?
}

extension MultiheadAttention {
    /// Shapes of the output and weights (nil when `needWeights` is false) for these inputs.
    /// - Throws: the shape errors `forward` would throw.
    public func outputShapes(query: [Int], key: [Int], value: [Int], options: ForwardOptions = ForwardOptions())
        throws -> (output: [Int], weights: [Int]?) {
        for (name, shape) in [("query", query), ("key", key), ("value", value)] {
            guard shape.allSatisfy({ $0 >= 0 }) else { throw MultiheadError.shape("\(name) has a negative dimension: \(shape)") }
            _ = try checkedProduct(shape, name)
        }
        let q = TensorView(base: UnsafeRawPointer(bitPattern: 64)!, element: .float32, shape: query, strides: Tensor<Float>.contiguousStrides(query))
        let k = TensorView(base: q.base, element: .float32, shape: key, strides: Tensor<Float>.contiguousStrides(key))
        let v = TensorView(base: q.base, element: .float32, shape: value, strides: Tensor<Float>.contiguousStrides(value))
        let plan = try makePlan(query: q, key: k, value: v, keyPaddingMask: nil, attnMask: nil, options: options)
        return (plan.outputShape, plan.weightsShape)
    }

    func makePlan(query: TensorView, key: TensorView, value: TensorView, keyPaddingMask: TensorView?,
                  attnMask: TensorView?, options: ForwardOptions) throws -> ForwardPlan {
        let c = config
        // Local functions rather than loops over arrays of tuples: no allocation per call.
        func checkInput(_ name: String, _ t: TensorView) throws {
            guard t.element == .float32 else { throw MultiheadError.shape("\(name) must be float32, got \(t.element)") }
            guard t.shape.count == t.strides.count else {
                throw MultiheadError.shape("\(name) has shape \(t.shape) but \(t.strides.count) strides")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }) else { throw MultiheadError.shape("\(name) has a negative dimension: \(t.shape)") }
        }
        try checkInput("query", query)
        try checkInput("key", key)
        try checkInput("value", value)
        let rank = query.rank
        guard rank == 2 || rank == 3 else {
            throw MultiheadError.shape("query should be unbatched 2D or batched 3D tensor but received \(rank)-D query tensor of shape \(query.shape)")
        }
        guard key.rank == rank, value.rank == rank else {
            throw MultiheadError.shape("for \(rank == 3 ? "batched (3-D)" : "unbatched (2-D)") query of shape \(query.shape), expected key and value to be \(rank)-D but found \(key.rank)-D key \(key.shape) and \(value.rank)-D value \(value.shape)")
        }
        let batched = rank == 3
        // Axis numbers of (batch, sequence, feature); unbatched has no batch axis.
        let (batchAxis, seqAxis) = !batched ? (-1, 0) : (c.batchFirst ? (0, 1) : (1, 0))
        let featureAxis = rank - 1
        func input(_ t: TensorView) -> SequenceInput {
            SequenceInput(base: t.floats, batchStride: batched ? t.strides[batchAxis] : 0,
                          sequenceStride: t.strides[seqAxis], featureStride: t.strides[featureAxis])
        }
        let N = batched ? query.shape[batchAxis] : 1
        let L = query.shape[seqAxis]
        let S = key.shape[seqAxis]
        func checkFeatures(_ name: String, _ t: TensorView, _ dim: Int, _ dimName: String) throws {
            guard t.shape[featureAxis] == dim else {
                throw MultiheadError.shape("\(name) of shape \(t.shape) has \(t.shape[featureAxis]) features but the module expects \(dimName)=\(dim)")
            }
        }
        try checkFeatures("query", query, c.qdim, c.qdim == c.embedDim ? "embed_dim" : "qdim")
        try checkFeatures("key", key, c.kdim, "kdim")
        try checkFeatures("value", value, c.vdim, "vdim")
        if batched {
            guard key.shape[batchAxis] == N, value.shape[batchAxis] == N else {
                throw MultiheadError.shape("batch sizes differ: query \(query.shape), key \(key.shape), value \(value.shape) (batch_first=\(c.batchFirst))")
            }
        }
        guard value.shape[seqAxis] == S else {
            throw MultiheadError.shape("key \(key.shape) and value \(value.shape) must have the same sequence length (batch_first=\(c.batchFirst))")
        }
        let H = c.numHeads
        let (keyCount, keyCountOverflow) = S.addingReportingOverflow((c.addBiasKV ? 1 : 0) + (c.addZeroAttn ? 1 : 0))
        if keyCountOverflow { throw MultiheadError.outOfMemory("key of shape \(key.shape): the key count overflows") }
        _ = try checkedProduct([N, H, max(L, keyCount), c.headDim, 4], "attention scratch")
        let selfAttention = query.base == key.base && key.base == value.base && query.shape == key.shape
            && key.shape == value.shape && query.strides == key.strides && key.strides == value.strides
        if N > 0 && L > 0 {
            // Broadcast (stride 0) inputs can describe far more elements than the caller holds:
            // refuse scratch the machine cannot have instead of trapping in the allocator. Counted:
            // one group of heads' scratch (`headsPerGroup`) and one problem (~48 floats) per
            // (batch, head).
            var bytes = Int.max
            if let perHead = Self.scratchBytesPerHead(N: N, L: L, keyCount: keyCount, headDim: c.headDim,
                                                      fusedProjection: selfAttention && c.packedInputProjection),
               let problems = try? checkedProduct([N, H, 48 * MemoryLayout<Float>.size], ""),
               case let (group, false) = perHead.multipliedReportingOverflow(
                   by: Self.headsPerGroup(bytesPerHead: perHead, heads: H, limit: engine.scratchLimit)),
               case let (sum, false) = group.addingReportingOverflow(problems) {
                bytes = sum
            }
            try checkMemory(floats: bytes / MemoryLayout<Float>.size,
                            "the scratch buffers of a forward call with N=\(N), L=\(L), S=\(S), embed_dim=\(c.embedDim)")
        }
        let paddingMask = try keyPaddingMask.map { m -> MaskInput in
            try checkMaskElement(m, "key_padding_mask")
            let expected = batched ? [N, S] : [S]
            guard m.shape == expected else {
                throw MultiheadError.shape("expected key_padding_mask of shape \(expected) for query \(query.shape) and key \(key.shape), but got \(m.shape)")
            }
            return MaskInput(view: m, batchStride: batched ? m.strides[0] : 0, headStride: 0, rowStride: 0,
                             colStride: m.strides[m.rank - 1])
        }
        let attn = try attnMask.map { m -> MaskInput in
            try checkMaskElement(m, "attn_mask")
            if m.rank == 2 {
                guard m.shape == [L, S] else {
                    throw MultiheadError.shape("the shape of the 2D attn_mask is \(m.shape), but should be \([L, S])")
                }
                return MaskInput(view: m, batchStride: 0, headStride: 0, rowStride: m.strides[0], colStride: m.strides[1])
            }
            guard m.rank == 3 else {
                throw MultiheadError.shape("attn_mask's dimension \(m.rank) is not supported (shape \(m.shape)); expected 2-D (L, S) or 3-D (N*num_heads, L, S)")
            }
            let expected = [N * H, L, S]
            guard m.shape == expected else {
                throw MultiheadError.shape("the shape of the 3D attn_mask is \(m.shape), but should be \(expected)")
            }
            return MaskInput(view: m, batchStride: H * m.strides[0], headStride: m.strides[0], rowStride: m.strides[1], colStride: m.strides[2])
        }
        let outputShape = batched ? (c.batchFirst ? [N, L, c.embedDim] : [L, N, c.embedDim]) : [L, c.embedDim]
        var weightsShape: [Int]? = nil
        if options.needWeights {
            let perBatch = options.averageAttnWeights ? [L, keyCount] : [H, L, keyCount]
            weightsShape = batched ? [N] + perBatch : perBatch
            _ = try checkedProduct(weightsShape!, "attention weights")
        }
        return ForwardPlan(batched: batched, N: N, L: L, S: S, keyCount: keyCount, query: input(query),
                           key: input(key), value: input(value), attnMask: attn, paddingMask: paddingMask,
                           causal: options.isCausal,
                           selfAttention: selfAttention, outputShape: outputShape, weightsShape: weightsShape)
    }

    private func checkMaskElement(_ m: TensorView, _ name: String) throws {
        guard m.shape.count == m.strides.count else {
            throw MultiheadError.shape("\(name) has shape \(m.shape) but \(m.strides.count) strides")
        }
        guard m.shape.allSatisfy({ $0 >= 0 }) else { throw MultiheadError.shape("\(name) has a negative dimension: \(m.shape)") }
    }
}
