import Foundation

/// `torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None)` at inference: `numLayers`
/// copies of a `TransformerEncoderLayer` (same configuration, parameters copied, as PyTorch's
/// deep copy), then the optional final `norm`.
///
/// Parameters by PyTorch's state_dict names: `layers.0.self_attn.in_proj_weight`, ...,
/// `layers.{i}.norm2.bias`, then `norm.weight`, `norm.bias`. Thread-safe.
///
/// Padded positions: every position is computed, as PyTorch does with
/// `enable_nested_tensor=False` (PyTorch's nested-tensor fast path instead returns 0 where
/// `src_key_padding_mask` is true).
public final class TransformerEncoder: StateDictModule, @unchecked Sendable {
    public let layers: [TransformerEncoderLayer]
    public let norm: LayerNorm?
    public let engine: Engine

    public var numLayers: Int { layers.count }
    public var layerConfig: TransformerEncoderLayerConfig { layers[0].config }

    /// - Parameters:
    ///   - encoderLayer: copied `numLayers` times (configuration and parameters).
    ///   - norm: the final layer norm, or nil; used as given (not copied).
    /// - Throws: `MultiheadError.invalidArgument` for `numLayers < 1` or a norm of the wrong size.
    public init(encoderLayer: TransformerEncoderLayer, numLayers: Int, norm: LayerNorm? = nil, engine: Engine? = nil) throws {
        guard numLayers >= 1 else { throw MultiheadError.invalidArgument("num_layers must be >= 1, got \(numLayers)") }
        if let norm, norm.normalizedShape != encoderLayer.config.dModel {
            throw MultiheadError.invalidArgument("norm has normalized_shape \(norm.normalizedShape) but the layers have d_model=\(encoderLayer.config.dModel)")
        }
        let engine = engine ?? encoderLayer.engine
        self.engine = engine
        layers = try (0..<numLayers).map { _ in try encoderLayer.copy(engine: engine) }
        self.norm = norm
    }

    /// Layers made from a configuration (each initialised from `seed + i`) and an optional final
    /// norm `LayerNorm(dModel, eps: normEps)`.
    public init(config: TransformerEncoderLayerConfig, numLayers: Int, normEps: Double? = nil, normBias: Bool = true,
                seed: UInt64 = 0, engine: Engine = .shared) throws {
        guard numLayers >= 1 else { throw MultiheadError.invalidArgument("num_layers must be >= 1, got \(numLayers)") }
        self.engine = engine
        layers = try (0..<numLayers).map { try TransformerEncoderLayer(config: config, seed: seed &+ UInt64($0) &* 16, engine: engine) }
        norm = try normEps.map { try LayerNorm(config.dModel, eps: $0, bias: normBias, engine: engine) }
    }

    var children: [(prefix: String, module: StateDictModule)] {
        var result: [(String, StateDictModule)] = layers.enumerated().map { ("layers.\($0.offset).", $0.element) }
        if let norm { result.append(("norm.", norm)) }
        return result
    }

    public var parameterShapes: [(name: String, shape: [Int])] { prefixedShapes(children) }

    public func setParameter(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        let (module, local) = try route(name, children)
        try module.setParameter(local, shape: shape, values: values)
    }

    public func parameter(_ name: String) throws -> Tensor<Float> {
        let (module, local) = try route(name, children)
        return try module.parameter(local)
    }
}

extension TransformerEncoder {
    /// Runs every layer, then the norm, on strided views (the C and Python path).
    ///
    /// - Parameters:
    ///   - src: `[L, N, E]` (`[N, L, E]` with batchFirst) or unbatched `[L, E]`, float32, any strides.
    ///   - mask: `[L, L]` or `[N * nhead, L, L]`, bool or float32, or nil (PyTorch's `mask`).
    ///   - srcKeyPaddingMask: `[N, L]` (unbatched `[L]`), bool or float32, or nil.
    ///   - isCausal: a hint with `mask`; without it, a top-left causal mask.
    ///   - output: the shape of `src`, any strides.
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(src: TensorView, mask: TensorView? = nil, srcKeyPaddingMask: TensorView? = nil,
                        isCausal: Bool = false, output: MutableTensorView) throws {
        let c = layerConfig
        let plan = try EncoderPlan.make(src: src, mask: mask, keyPaddingMask: srcKeyPaddingMask, isCausal: isCausal,
                                        dModel: c.dModel, nhead: c.nhead, batchFirst: c.batchFirst, maskName: "mask")
        try checkOutput(output, like: src)
        try EncoderScratch.with(rows: plan.rowCount, E: c.dModel, dimFeedforward: maxFeedforward, threads: engine.threadCount) { scratch in
            plan.gather(src, batchFirst: c.batchFirst, into: scratch.first)
            let result = try run(plan, scratch: scratch)
            plan.scatter(result, into: output, batchFirst: c.batchFirst)
        }
    }

    /// Runs the encoder on a tensor; returns a tensor shaped like `src`.
    public func forward(_ src: Tensor<Float>, mask: Mask? = nil, srcKeyPaddingMask: Mask? = nil,
                        isCausal: Bool = false) throws -> Tensor<Float> {
        try runOnTensors(src, mask, srcKeyPaddingMask) { s, m, k, o in
            try forward(src: s, mask: m, srcKeyPaddingMask: k, isCausal: isCausal, output: o)
        }
    }

    /// Callable like the PyTorch module: `try encoder(src, srcKeyPaddingMask: .bool(padding))`.
    public func callAsFunction(_ src: Tensor<Float>, mask: Mask? = nil, srcKeyPaddingMask: Mask? = nil,
                               isCausal: Bool = false) throws -> Tensor<Float> {
        try forward(src, mask: mask, srcKeyPaddingMask: srcKeyPaddingMask, isCausal: isCausal)
    }

    var maxFeedforward: Int { layers.map(\.config.dimFeedforward).max() ?? 1 }

    /// Runs the layers on `scratch.first` (contiguous `[N, L, E]`), ping-ponging between the two
    /// scratch buffers, then the norm; returns the buffer holding the result.
    func run(_ plan: EncoderPlan, scratch: EncoderScratch) throws -> UnsafeMutablePointer<Float> {
        var input = scratch.first, output = scratch.second
        for layer in layers {
            try layer.run(plan, input: input, output: output, scratch: scratch)
            swap(&input, &output)
        }
        if let norm {
            let p = norm.snapshot()
            let E = plan.E
            let block = TransformerEncoderLayer.rowBlock
            let rows = plan.computedRowCount
            let result = input
            engine.executor.run(tiles: (rows + block - 1) / block, parallel: rows * E >= 1 << 16) { tile, _ in
                if let list = plan.rows {
                    for i in tile * block ..< min((tile + 1) * block, rows) {
                        let row = result + Int(list[i]) * E
                        LayerNorm.normalizeRows(row, rows: 1, d: E, p, into: row)
                    }
                } else {
                    let range = tile * block ..< min((tile + 1) * block, rows)
                    LayerNorm.normalizeRows(result + range.lowerBound * E, rows: range.count, d: E, p, into: result + range.lowerBound * E)
                }
            }
        }
        return input
    }
}
