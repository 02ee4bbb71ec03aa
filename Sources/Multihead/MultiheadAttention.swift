import Foundation
import MultiheadKernels

/// The constructor arguments of `torch.nn.MultiheadAttention`, plus `qdim`.
public struct MultiheadAttentionConfig: Sendable, Equatable {
    public var embedDim: Int
    public var numHeads: Int
    /// Kept for fidelity; inference applies no dropout.
    public var dropout: Float
    public var bias: Bool
    public var addBiasKV: Bool
    public var addZeroAttn: Bool
    public var kdim: Int
    public var vdim: Int
    /// Query feature size (not in PyTorch: there the query always has `embedDim` features).
    public var qdim: Int
    public var batchFirst: Bool

    public var headDim: Int { embedDim / numHeads }

    /// PyTorch's `_qkv_same_embed_dim`: one packed `in_proj_weight` when every input has `embedDim` features.
    public var packedInputProjection: Bool { kdim == embedDim && vdim == embedDim && qdim == embedDim }

    /// - Throws: `MultiheadError.invalidArgument` naming the bad size.
    public init(embedDim: Int, numHeads: Int, dropout: Float = 0, bias: Bool = true, addBiasKV: Bool = false,
                addZeroAttn: Bool = false, kdim: Int? = nil, vdim: Int? = nil, qdim: Int? = nil,
                batchFirst: Bool = false) throws {
        guard embedDim > 0 else { throw MultiheadError.invalidArgument("embed_dim must be positive, got \(embedDim)") }
        guard numHeads > 0 else { throw MultiheadError.invalidArgument("num_heads must be positive, got \(numHeads)") }
        guard embedDim % numHeads == 0 else {
            throw MultiheadError.invalidArgument("embed_dim must be divisible by num_heads: embed_dim=\(embedDim), num_heads=\(numHeads)")
        }
        for (name, value) in [("kdim", kdim), ("vdim", vdim), ("qdim", qdim)] {
            if let value, value <= 0 { throw MultiheadError.invalidArgument("\(name) must be positive, got \(value)") }
        }
        guard dropout >= 0, dropout <= 1 else {
            throw MultiheadError.invalidArgument("dropout probability has to be between 0 and 1, but got \(dropout)")
        }
        // Parameter sizes must fit an Int, or later products could overflow.
        _ = try checkedProduct([3, embedDim, max(embedDim, kdim ?? 0, vdim ?? 0, qdim ?? 0)], "in_proj_weight")
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.dropout = dropout
        self.bias = bias
        self.addBiasKV = addBiasKV
        self.addZeroAttn = addZeroAttn
        self.kdim = kdim ?? embedDim
        self.vdim = vdim ?? embedDim
        self.qdim = qdim ?? embedDim
        self.batchFirst = batchFirst
        // Parameters live twice (as given and packed): refuse what cannot fit, rather than let a
        // failed allocation trap (a Swift trap cannot be caught; it would kill a host process).
        var floats = 0
        for (name, shape) in parameterShapes {
            let (sum, overflow) = floats.addingReportingOverflow(try checkedProduct(shape, name))
            if overflow { throw MultiheadError.outOfMemory("parameters of embed_dim=\(embedDim): size overflows") }
            floats = sum
        }
        try checkMemory(floats: floats, copies: 2, "parameters of embed_dim=\(embedDim), kdim=\(self.kdim), vdim=\(self.vdim), qdim=\(self.qdim)")
    }

    /// Every parameter this configuration has, by its PyTorch state_dict name, in state_dict order.
    public var parameterShapes: [(name: String, shape: [Int])] {
        let E = embedDim
        var shapes: [(String, [Int])] = []
        if packedInputProjection {
            shapes.append(("in_proj_weight", [3 * E, E]))
        } else {
            shapes += [("q_proj_weight", [E, qdim]), ("k_proj_weight", [E, kdim]), ("v_proj_weight", [E, vdim])]
        }
        if bias { shapes.append(("in_proj_bias", [3 * E])) }
        if addBiasKV { shapes += [("bias_k", [1, 1, E]), ("bias_v", [1, 1, E])] }
        shapes.append(("out_proj.weight", [E, E]))
        if bias { shapes.append(("out_proj.bias", [E])) }
        return shapes
    }
}

/// The machine's memory in bytes: requests above it are refused with `.outOfMemory` before
/// anything is allocated, since a failed Swift allocation traps instead of returning nil.
let physicalMemoryBytes = Int(clamping: ProcessInfo.processInfo.physicalMemory)

/// Throws `.outOfMemory` naming `what` when `copies * floats` float32 values (an overflow counts
/// as too many) would exceed the machine's memory.
func checkMemory(floats: Int, copies: Int = 1, _ what: @autoclosure () -> String) throws {
    let (elements, overflowE) = floats.multipliedReportingOverflow(by: copies)
    let (bytes, overflowB) = elements.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
    guard !overflowE, !overflowB, bytes <= physicalMemoryBytes else {
        let size = overflowE || overflowB ? "more than \(Int.max) bytes" : "\(bytes) bytes"
        throw MultiheadError.outOfMemory("\(what()): \(size) needed, more than this machine's memory (\(physicalMemoryBytes) bytes)")
    }
}

/// Multi-head attention with exactly the inference semantics of `torch.nn.MultiheadAttention`
/// (see the README for the documented differences), on a multi-threaded engine.
///
/// Thread-safe: concurrent `forward` calls are allowed, and give the same bits as one at a time;
/// setting parameters while a forward runs is safe too (the forward sees the old or new set).
public final class MultiheadAttention: @unchecked Sendable {
    public let config: MultiheadAttentionConfig
    public let engine: Engine
    let lock = NSLock()
    var parameters: [String: [Float]] = [:]
    var packedCache: PackedParameters?

    /// Creates a module whose parameters are initialised as PyTorch initialises them (xavier
    /// uniform input projections, Linear-style `out_proj.weight`, zero biases, xavier normal
    /// `bias_k`/`bias_v`), drawn from a generator seeded with `seed`.
    /// - Throws: `MultiheadError.invalidArgument` for sizes PyTorch rejects.
    public convenience init(embedDim: Int, numHeads: Int, dropout: Float = 0, bias: Bool = true,
                            addBiasKV: Bool = false, addZeroAttn: Bool = false, kdim: Int? = nil,
                            vdim: Int? = nil, qdim: Int? = nil, batchFirst: Bool = false,
                            seed: UInt64 = 0, engine: Engine = .shared) throws {
        let config = try MultiheadAttentionConfig(
            embedDim: embedDim, numHeads: numHeads, dropout: dropout, bias: bias, addBiasKV: addBiasKV,
            addZeroAttn: addZeroAttn, kdim: kdim, vdim: vdim, qdim: qdim, batchFirst: batchFirst)
        self.init(config: config, seed: seed, engine: engine)
    }

    public init(config: MultiheadAttentionConfig, seed: UInt64 = 0, engine: Engine = .shared) {
        self.config = config
        self.engine = engine
        parameters = Self.initialParameters(config, seed: seed)
    }
}
