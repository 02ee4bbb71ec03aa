import Foundation
import MultiheadKernels

/// The constructor arguments of `torch.nn.TransformerEncoderLayer`, with PyTorch's defaults.
public struct TransformerEncoderLayerConfig: Sendable, Equatable {
    public var dModel: Int
    public var nhead: Int
    public var dimFeedforward: Int
    /// Kept for fidelity; inference applies no dropout.
    public var dropout: Float
    public var activation: Activation
    public var layerNormEps: Double
    public var batchFirst: Bool
    /// Pre-norm (`x + sa(norm1(x))`, ...) instead of post-norm (`norm1(x + sa(x))`, ...).
    public var normFirst: Bool
    /// Biases of the attention and linear layers, and of the layer norms.
    public var bias: Bool

    /// - Throws: `MultiheadError.invalidArgument` naming a bad size or option.
    public init(dModel: Int, nhead: Int, dimFeedforward: Int = 2048, dropout: Float = 0.1, activation: Activation = .relu,
                layerNormEps: Double = 1e-5, batchFirst: Bool = false, normFirst: Bool = false, bias: Bool = true) throws {
        guard dModel > 0 else { throw MultiheadError.invalidArgument("d_model must be positive, got \(dModel)") }
        guard nhead > 0 else { throw MultiheadError.invalidArgument("nhead must be positive, got \(nhead)") }
        guard dModel % nhead == 0 else {
            throw MultiheadError.invalidArgument("d_model must be divisible by nhead: d_model=\(dModel), nhead=\(nhead)")
        }
        guard dimFeedforward > 0 else { throw MultiheadError.invalidArgument("dim_feedforward must be positive, got \(dimFeedforward)") }
        guard dropout >= 0, dropout <= 1 else {
            throw MultiheadError.invalidArgument("dropout probability has to be between 0 and 1, but got \(dropout)")
        }
        guard layerNormEps >= 0, layerNormEps.isFinite else {
            throw MultiheadError.invalidArgument("layer_norm_eps must be finite and >= 0, got \(layerNormEps)")
        }
        _ = try checkedProduct([dModel, dimFeedforward, 4], "linear1.weight")
        self.dModel = dModel
        self.nhead = nhead
        self.dimFeedforward = dimFeedforward
        self.dropout = dropout
        self.activation = activation
        self.layerNormEps = layerNormEps
        self.batchFirst = batchFirst
        self.normFirst = normFirst
        self.bias = bias
    }
}

/// `torch.nn.TransformerEncoderLayer` at inference: self-attention (the engine's
/// `MultiheadAttention`) and a feed-forward block, each with a residual connection and a layer
/// norm, post-norm by default or pre-norm with `normFirst`.
///
/// Parameters by PyTorch's state_dict names: `self_attn.in_proj_weight`, `self_attn.in_proj_bias`,
/// `self_attn.out_proj.weight`, `self_attn.out_proj.bias`, `linear1.weight`, `linear1.bias`,
/// `linear2.weight`, `linear2.bias`, `norm1.weight`, `norm1.bias`, `norm2.weight`, `norm2.bias`
/// (no biases with `bias: false`). Thread-safe: concurrent forwards give the same bits.
public final class TransformerEncoderLayer: StateDictModule, @unchecked Sendable {
    public let config: TransformerEncoderLayerConfig
    public let engine: Engine
    public let selfAttn: MultiheadAttention
    public let linear1: Linear
    public let linear2: Linear
    public let norm1: LayerNorm
    public let norm2: LayerNorm

    /// Creates a layer initialised as PyTorch initialises one (see `MultiheadAttention`, `Linear`,
    /// `LayerNorm`), from a generator seeded with `seed`.
    /// - Throws: `MultiheadError.invalidArgument` for sizes PyTorch rejects.
    public convenience init(dModel: Int, nhead: Int, dimFeedforward: Int = 2048, dropout: Float = 0.1,
                            activation: Activation = .relu, layerNormEps: Double = 1e-5, batchFirst: Bool = false,
                            normFirst: Bool = false, bias: Bool = true, seed: UInt64 = 0, engine: Engine = .shared) throws {
        let config = try TransformerEncoderLayerConfig(
            dModel: dModel, nhead: nhead, dimFeedforward: dimFeedforward, dropout: dropout, activation: activation,
            layerNormEps: layerNormEps, batchFirst: batchFirst, normFirst: normFirst, bias: bias)
        try self.init(config: config, seed: seed, engine: engine)
    }

    public init(config: TransformerEncoderLayerConfig, seed: UInt64 = 0, engine: Engine = .shared) throws {
        self.config = config
        self.engine = engine
        let c = config
        selfAttn = try MultiheadAttention(embedDim: c.dModel, numHeads: c.nhead, dropout: c.dropout, bias: c.bias,
                                          batchFirst: c.batchFirst, seed: seed, engine: engine)
        linear1 = try Linear(inFeatures: c.dModel, outFeatures: c.dimFeedforward, bias: c.bias, seed: seed &+ 1, engine: engine)
        linear2 = try Linear(inFeatures: c.dimFeedforward, outFeatures: c.dModel, bias: c.bias, seed: seed &+ 2, engine: engine)
        norm1 = try LayerNorm(c.dModel, eps: c.layerNormEps, bias: c.bias, engine: engine)
        norm2 = try LayerNorm(c.dModel, eps: c.layerNormEps, bias: c.bias, engine: engine)
    }

    /// The submodules by state_dict prefix, in PyTorch's order.
    var children: [(prefix: String, module: StateDictModule)] {
        [("self_attn.", selfAttn), ("linear1.", linear1), ("linear2.", linear2), ("norm1.", norm1), ("norm2.", norm2)]
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

    /// A layer with this one's configuration and a copy of its parameters (what PyTorch's
    /// `TransformerEncoder` does to the layer it is given).
    public func copy(engine: Engine? = nil) throws -> TransformerEncoderLayer {
        let layer = try TransformerEncoderLayer(config: config, engine: engine ?? self.engine)
        try layer.loadStateDict(stateDict())
        return layer
    }
}

/// Every parameter of `children`, with each child's prefix.
func prefixedShapes(_ children: [(prefix: String, module: StateDictModule)]) -> [(name: String, shape: [Int])] {
    children.flatMap { child in child.module.parameterShapes.map { (child.prefix + $0.name, $0.shape) } }
}

/// The child that owns parameter `name`, and the name within it.
func route(_ name: String, _ children: [(prefix: String, module: StateDictModule)]) throws -> (StateDictModule, String) {
    for (prefix, module) in children where name.hasPrefix(prefix) {
        let local = String(name.dropFirst(prefix.count))
        if module.parameterShapes.contains(where: { $0.name == local }) { return (module, local) }
    }
    throw MultiheadError.invalidArgument(
        "unknown parameter '\(name)'; expected one of " + prefixedShapes(children).map(\.name).joined(separator: ", "))
}
