import Foundation

/// A module whose parameters are addressed by PyTorch state_dict names: `LayerNorm`, `Linear`,
/// `TransformerEncoderLayer`, `TransformerEncoder` (and `MultiheadAttention`, which has the same
/// methods of its own).
///
/// Conformers provide the three requirements; `stateDict`, `loadStateDict` and
/// `loadSafetensors` come from this protocol and behave as `MultiheadAttention`'s do
/// (all-or-nothing, PyTorch's messages).
public protocol StateDictModule: AnyObject {
    /// Every parameter, by its PyTorch state_dict name, in state_dict order.
    var parameterShapes: [(name: String, shape: [Int])] { get }

    /// Sets parameter `name` from `shape.product` row-major floats (copied).
    /// - Throws: `MultiheadError.invalidArgument` (unknown name) or `.shape` (wrong shape or count).
    func setParameter(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws

    /// A copy of parameter `name`.
    /// - Throws: `MultiheadError.invalidArgument` for an unknown name.
    func parameter(_ name: String) throws -> Tensor<Float>
}

extension StateDictModule {
    /// Shape of parameter `name`.
    /// - Throws: `MultiheadError.invalidArgument` naming the parameters this module has.
    public func parameterShape(_ name: String) throws -> [Int] {
        let shapes = parameterShapes
        guard let entry = shapes.first(where: { $0.name == name }) else {
            throw MultiheadError.invalidArgument(
                "unknown parameter '\(name)' for \(type(of: self)); expected one of "
                + shapes.map(\.name).joined(separator: ", "))
        }
        return entry.shape
    }

    /// Sets one parameter from a tensor (see `setParameter(_:shape:values:)`).
    public func setParameter(_ name: String, _ tensor: Tensor<Float>) throws {
        try tensor.scalars.withUnsafeBufferPointer { try setParameter(name, shape: tensor.shape, values: $0) }
    }

    /// Every parameter by its PyTorch state_dict name.
    public func stateDict() -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for (name, _) in parameterShapes {
            result[name] = try? parameter(name)
        }
        return result
    }

    /// Loads parameters by PyTorch state_dict names, as `Module.load_state_dict` does.
    /// - Parameter strict: when true, names this module lacks and parameters the dict lacks are errors.
    /// - Throws: `MultiheadError.invalidArgument` listing unexpected or missing names, `.shape` for
    ///   a wrong shape. Nothing is changed when it throws.
    public func loadStateDict(_ dict: [String: Tensor<Float>], strict: Bool = true) throws {
        let shapes = parameterShapes
        let names = Set(shapes.map(\.name))
        if strict {
            let unexpected = dict.keys.filter { !names.contains($0) }.sorted()
            let missing = shapes.map(\.name).filter { dict[$0] == nil }
            if !unexpected.isEmpty || !missing.isEmpty {
                var parts: [String] = []
                if !missing.isEmpty { parts.append("missing key(s): " + missing.joined(separator: ", ")) }
                if !unexpected.isEmpty { parts.append("unexpected key(s): " + unexpected.joined(separator: ", ")) }
                throw MultiheadError.invalidArgument("error loading state_dict for \(type(of: self)): " + parts.joined(separator: "; "))
            }
        }
        for (name, expected) in shapes {
            guard let tensor = dict[name] else { continue }
            guard tensor.shape == expected else {
                throw MultiheadError.shape("size mismatch for \(name): copying a param with shape \(tensor.shape), the shape in current model is \(expected)")
            }
        }
        for (name, _) in shapes {
            if let tensor = dict[name] { try setParameter(name, tensor) }
        }
    }

    /// Loads every parameter from a `.safetensors` file (F32, F16, BF16, F64 converted), reading
    /// `prefix + name`; other tensors are ignored, so one file can hold a whole model.
    /// - Throws: `MultiheadError.io` / `.format` (unreadable or malformed file), `.invalidArgument`
    ///   (a missing parameter), `.shape`, `.unsupported` (dtype). Nothing is changed when it throws.
    public func loadSafetensors(path: String, prefix: String = "") throws {
        let file = try SafetensorsFile(path: path)
        try loadSafetensors(file, prefix: prefix)
    }

    /// As `loadSafetensors(path:prefix:)`, from an open file.
    public func loadSafetensors(_ file: SafetensorsFile, prefix: String = "") throws {
        var dict: [String: Tensor<Float>] = [:]
        var missing: [String] = []
        for (name, _) in parameterShapes {
            if file.entries[prefix + name] != nil {
                dict[name] = try file.floatTensor(prefix + name)
            } else {
                missing.append(prefix + name)
            }
        }
        guard missing.isEmpty else {
            throw MultiheadError.invalidArgument("safetensors file '\(file.path)' lacks parameter(s): " + missing.joined(separator: ", "))
        }
        try loadStateDict(dict, strict: true)
    }
}

/// Checks a parameter's shape and count before it is stored.
func checkParameter(_ name: String, expected: [Int], shape: [Int], count: Int) throws {
    guard shape == expected else {
        throw MultiheadError.shape("parameter '\(name)' has shape \(expected), got \(shape)")
    }
    let needed = expected.reduce(1, *)
    guard count == needed else {
        throw MultiheadError.shape("parameter '\(name)' of shape \(expected) needs \(needed) values, got \(count)")
    }
}

extension MultiheadAttention: StateDictModule {}
