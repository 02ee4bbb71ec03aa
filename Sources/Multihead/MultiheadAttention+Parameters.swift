import Foundation
import MultiheadKernels

/// Parameters in the layout the kernels read: weights transposed and packed once, biases
/// contiguous, the softmax scale `1/sqrt(D)` folded into the query projection. Immutable; rebuilt
/// after a parameter changes.
final class PackedParameters: NodeMirrored, @unchecked Sendable {
    /// `W^T` of the input projections. With one packed `in_proj_weight` all three are column
    /// ranges of one `[E, 3E]` matrix (`0..<E` query, then key, then value), so self-attention
    /// projects with one product; otherwise each is its own `[in, E]` matrix at columns `0..<E`.
    let query, key, value: PackedMatrix
    /// Where each projection's columns start in its matrix.
    let queryColumn, keyColumn, valueColumn: Int
    /// `W^T` of the output projection, `[E, E]`.
    let output: PackedMatrix
    /// `out_proj.weight` as set (`[E, E]` row-major; shares the parameter's storage), from which
    /// a call that runs heads in groups packs each group's rows of `W^T`.
    let outputWeight: [Float]
    /// `[3E]` (query part scaled), or nil.
    let inputBias: [Float]?
    let outputBias: [Float]?
    /// `[E]` each, or nil.
    let biasK: [Float]?
    let biasV: [Float]?
    /// Copies on the other NUMA nodes, when the engine mirrors weights (`Engine.mirrored`).
    var mirrors: NodeReplicas<PackedParameters?>?

    init(_ config: MultiheadAttentionConfig, _ p: [String: [Float]], cacheSizes: CacheSizes) {
        let E = config.embedDim
        let scale = 1 / Float(config.headDim).squareRoot()
        /// Packs `w` (`[rows, inputs]` row-major) transposed, its first `scaledRows` rows scaled.
        func pack(_ w: [Float], inputs: Int, scaledRows: Int) -> PackedMatrix {
            var w = w
            for i in 0..<(scaledRows * inputs) { w[i] *= scale }
            return w.withUnsafeBufferPointer { buffer in
                let view = MatrixView(base: buffer.baseAddress!, rows: inputs, cols: w.count / inputs,
                                      rowStride: 1, colStride: inputs)
                return PackedMatrix(view, cacheSizes: cacheSizes)
            }
        }
        if config.packedInputProjection {
            let fused = pack(p["in_proj_weight"]!, inputs: E, scaledRows: E)
            (query, key, value) = (fused, fused, fused)
            (queryColumn, keyColumn, valueColumn) = (0, E, 2 * E)
        } else {
            query = pack(p["q_proj_weight"]!, inputs: config.qdim, scaledRows: E)
            key = pack(p["k_proj_weight"]!, inputs: config.kdim, scaledRows: 0)
            value = pack(p["v_proj_weight"]!, inputs: config.vdim, scaledRows: 0)
            (queryColumn, keyColumn, valueColumn) = (0, 0, 0)
        }
        output = pack(p["out_proj.weight"]!, inputs: E, scaledRows: 0)
        outputWeight = p["out_proj.weight"]!
        inputBias = p["in_proj_bias"].map { bias in bias.enumerated().map { $0 < E ? $1 * scale : $1 } }
        outputBias = p["out_proj.bias"]
        biasK = p["bias_k"]
        biasV = p["bias_v"]
    }
}

extension MultiheadAttention {
    static func initialParameters(_ config: MultiheadAttentionConfig, seed: UInt64) -> [String: [Float]] {
        var rng = SeededGenerator(seed: seed)
        var result: [String: [Float]] = [:]
        for (name, shape) in config.parameterShapes {
            let count = shape.reduce(1, *)
            switch name {
            case "in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight":
                // xavier_uniform_: fan_out = shape[0], fan_in = shape[1].
                let bound = (6 / Float(shape[0] + shape[1])).squareRoot()
                result[name] = (0..<count).map { _ in rng.nextUniform(bound: bound) }
            case "out_proj.weight":
                // nn.Linear: kaiming_uniform_(a = sqrt(5)) gives bound 1 / sqrt(fan_in).
                let bound = 1 / Float(shape[1]).squareRoot()
                result[name] = (0..<count).map { _ in rng.nextUniform(bound: bound) }
            case "bias_k", "bias_v":
                // xavier_normal_ on (1, 1, E): fan_in = fan_out = E.
                let std = (1 / Float(shape[2])).squareRoot()
                result[name] = (0..<count).map { _ in rng.nextNormal() * std }
            default:
                result[name] = [Float](repeating: 0, count: count)
            }
        }
        return result
    }

    /// Names and shapes of every parameter, in PyTorch's state_dict order.
    public var parameterShapes: [(name: String, shape: [Int])] { config.parameterShapes }

    /// Sets one parameter by its PyTorch state_dict name.
    /// - Parameters:
    ///   - name: e.g. `in_proj_weight`, `out_proj.bias`, `bias_k`.
    ///   - shape: must equal the parameter's shape (`[1, 1, E]` for `bias_k`, ...).
    ///   - values: `shape.product` floats, row-major.
    /// - Throws: `MultiheadError.invalidArgument` (unknown name) or `.shape` (wrong shape or count).
    public func setParameter(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        let expected = try parameterShape(name)
        guard shape == expected else {
            throw MultiheadError.shape("parameter '\(name)' has shape \(expected), got \(shape)")
        }
        guard values.count == expected.reduce(1, *) else {
            throw MultiheadError.shape("parameter '\(name)' of shape \(expected) needs \(expected.reduce(1, *)) values, got \(values.count)")
        }
        let copy = Array(values)
        lock.withLock {
            parameters[name] = copy
            packedCache = nil
        }
    }

    /// The current value of parameter `name`.
    public func parameter(_ name: String) throws -> Tensor<Float> {
        let shape = try parameterShape(name)
        return lock.withLock { Tensor(uncheckedShape: shape, scalars: parameters[name]!) }
    }

    /// Every parameter by its PyTorch state_dict name.
    public func stateDict() -> [String: Tensor<Float>] {
        lock.withLock {
            Dictionary(uniqueKeysWithValues: config.parameterShapes.map {
                ($0.name, Tensor(uncheckedShape: $0.shape, scalars: parameters[$0.name]!))
            })
        }
    }

    /// Loads parameters by PyTorch state_dict names, as `Module.load_state_dict` does.
    /// - Parameter strict: when true, names this module lacks and parameters the dict lacks are errors.
    /// - Throws: `MultiheadError.invalidArgument` listing unexpected or missing names, `.shape` for a
    ///   wrong shape. Nothing is changed when it throws.
    public func loadStateDict(_ dict: [String: Tensor<Float>], strict: Bool = true) throws {
        let names = Set(config.parameterShapes.map(\.name))
        if strict {
            let unexpected = dict.keys.filter { !names.contains($0) }.sorted()
            let missing = names.filter { dict[$0] == nil }.sorted()
            if !unexpected.isEmpty || !missing.isEmpty {
                var parts: [String] = []
                if !missing.isEmpty { parts.append("missing key(s): " + missing.joined(separator: ", ")) }
                if !unexpected.isEmpty { parts.append("unexpected key(s): " + unexpected.joined(separator: ", ")) }
                throw MultiheadError.invalidArgument("error loading state_dict: " + parts.joined(separator: "; "))
            }
        }
        for (name, tensor) in dict where names.contains(name) {
            let expected = try parameterShape(name)
            guard tensor.shape == expected else {
                throw MultiheadError.shape("size mismatch for \(name): copying a param with shape \(tensor.shape), the shape in current model is \(expected)")
            }
        }
        lock.withLock {
            for (name, tensor) in dict where names.contains(name) { parameters[name] = tensor.scalars }
            packedCache = nil
        }
    }

    /// The packed parameters, packing them on first use after a change.
    func packedParameters() -> PackedParameters {
        lock.withLock {
            if let packedCache { return packedCache }
            // About the bytes of one packed copy: the input and output projection weights.
            let bytes = (config.qdim + config.kdim + config.vdim + config.embedDim) &* config.embedDim &* 4
            let packed = engine.mirrored(bytes: bytes) { PackedParameters(config, parameters, cacheSizes: engine.cacheSizes) }
            packedCache = packed
            return packed
        }
    }
}
