/// A dense, row-major tensor that owns its elements: the Swift API's value type.
public struct Tensor<Scalar: Sendable>: Sendable {
    /// Sizes, outermost first.
    public let shape: [Int]
    /// `shape.reduce(1, *)` elements in row-major order.
    public var scalars: [Scalar]

    /// - Throws: `MultiheadError.shape` when `scalars.count` is not the product of `shape`, or a
    ///   dimension is negative.
    public init(shape: [Int], scalars: [Scalar]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw MultiheadError.shape("tensor shape \(shape) has a negative dimension")
        }
        let count = try checkedProduct(shape, "tensor")
        guard count == scalars.count else {
            throw MultiheadError.shape("tensor shape \(shape) needs \(count) elements, got \(scalars.count)")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// Builds a tensor whose shape is already known to match (internal use).
    init(uncheckedShape shape: [Int], scalars: [Scalar]) {
        self.shape = shape
        self.scalars = scalars
    }

    public var rank: Int { shape.count }

    /// Row-major strides, in elements.
    public var strides: [Int] { Tensor.contiguousStrides(shape) }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s = s &* max(shape[i], 1)
        }
        return strides
    }
}

extension Tensor where Scalar == Float {
    /// A tensor of zeros.
    public init(zeros shape: [Int]) throws {
        let count = try checkedProduct(shape, "tensor")
        try checkMemory(floats: count, "a tensor of shape \(shape)")
        try self.init(shape: shape, scalars: [Float](repeating: 0, count: count))
    }

    /// A tensor of standard normal samples from a seeded generator (reproducible).
    public init(randomNormal shape: [Int], seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let count = try checkedProduct(shape, "tensor")
        try checkMemory(floats: count, "a tensor of shape \(shape)")
        try self.init(shape: shape, scalars: (0..<count).map { _ in rng.nextNormal() })
    }
}

/// A mask tensor: bool (`true` = masked, adds -inf) or float (added to the scores), as
/// PyTorch's `attn_mask` and `key_padding_mask` accept.
public enum Mask: Sendable {
    case bool(Tensor<Bool>)
    case float(Tensor<Float>)

    public var shape: [Int] {
        switch self {
        case .bool(let t): return t.shape
        case .float(let t): return t.shape
        }
    }
}
