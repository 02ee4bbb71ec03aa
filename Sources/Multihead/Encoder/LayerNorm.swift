import Foundation
import MultiheadKernels

/// `torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)` over
/// the last dimension, at inference.
///
/// `y = (x - mean) / sqrt(var + eps) * weight + bias`, with the biased variance, per row of
/// `normalizedShape` features. Parameters: `weight` `[d]` (ones) and `bias` `[d]` (zeros) when
/// `elementwiseAffine` (`bias` only when `bias` is true). Thread-safe.
public final class LayerNorm: StateDictModule, @unchecked Sendable {
    /// The feature count `d` (PyTorch's `normalized_shape`, one dimension).
    public let normalizedShape: Int
    public let eps: Double
    public let elementwiseAffine: Bool
    public let bias: Bool
    public let engine: Engine
    private let lock = NSLock()
    private var weightValues: [Float]
    private var biasValues: [Float]

    /// - Throws: `MultiheadError.invalidArgument` for a non-positive size or a negative or
    ///   non-finite `eps`.
    public init(_ normalizedShape: Int, eps: Double = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true,
                engine: Engine = .shared) throws {
        guard normalizedShape > 0 else {
            throw MultiheadError.invalidArgument("normalized_shape must be positive, got \(normalizedShape)")
        }
        guard eps >= 0, eps.isFinite else { throw MultiheadError.invalidArgument("eps must be finite and >= 0, got \(eps)") }
        _ = try checkedProduct([normalizedShape, 4], "normalized_shape")
        self.normalizedShape = normalizedShape
        self.eps = eps
        self.elementwiseAffine = elementwiseAffine
        self.bias = bias
        self.engine = engine
        weightValues = [Float](repeating: 1, count: normalizedShape)
        biasValues = [Float](repeating: 0, count: normalizedShape)
    }

    public var parameterShapes: [(name: String, shape: [Int])] {
        guard elementwiseAffine else { return [] }
        return bias ? [("weight", [normalizedShape]), ("bias", [normalizedShape])] : [("weight", [normalizedShape])]
    }

    public func setParameter(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        let expected = try parameterShape(name)
        try checkParameter(name, expected: expected, shape: shape, count: values.count)
        let copy = Array(values)
        lock.withLock {
            if name == "weight" { weightValues = copy } else { biasValues = copy }
        }
    }

    public func parameter(_ name: String) throws -> Tensor<Float> {
        let shape = try parameterShape(name)
        return lock.withLock { Tensor(uncheckedShape: shape, scalars: name == "weight" ? weightValues : biasValues) }
    }

    /// The parameters a forward call uses (a consistent snapshot).
    func snapshot() -> Parameters {
        lock.withLock { Parameters(weight: weightValues, bias: biasValues, eps: Float(eps)) }
    }

    /// What one normalisation reads: `weight` and `bias` `[d]` (ones and zeros without affine).
    struct Parameters: @unchecked Sendable {
        let weight: [Float]
        let bias: [Float]
        let eps: Float
    }
}

extension LayerNorm {
    /// Normalises `x` over its last dimension into `output`.
    ///
    /// - Parameters:
    ///   - input: `[..., d]`, float32, any rank >= 1 and any strides.
    ///   - output: the same shape, any strides; may be `input` itself (rows are read before written).
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(input: TensorView, output: MutableTensorView) throws {
        guard input.element == .float32 else { throw MultiheadError.shape("input must be float32, got \(input.element)") }
        guard input.rank >= 1, input.strides.count == input.rank else {
            throw MultiheadError.shape("input must have rank >= 1 with one stride per dimension, got shape \(input.shape) and \(input.strides.count) strides")
        }
        guard input.shape.last == normalizedShape else {
            throw MultiheadError.shape("input of shape \(input.shape) must end with normalized_shape [\(normalizedShape)]")
        }
        guard output.shape == input.shape, output.strides.count == output.shape.count else {
            throw MultiheadError.shape("output must have shape \(input.shape), got \(output.shape) with \(output.strides.count) strides")
        }
        guard input.shape.allSatisfy({ $0 >= 0 }) else { throw MultiheadError.shape("input has a negative dimension: \(input.shape)") }
        let rows = try checkedProduct(Array(input.shape.dropLast()), "input")
        let d = normalizedShape
        let p = snapshot()
        // Gathered to contiguous scratch first, so any strides (in place included) work.
        let x = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * d, 1))
        defer { x.deallocate() }
        gatherRows(input.floats, shape: input.shape, strides: input.strides, into: x)
        let block = 64
        engine.executor.run(tiles: (rows + block - 1) / block, parallel: rows * d >= 1 << 18) { tile, _ in
            let range = tile * block ..< min((tile + 1) * block, rows)
            Self.normalizeRows(x + range.lowerBound * d, rows: range.count, d: d, p, into: x + range.lowerBound * d)
        }
        scatterRows(x, shape: input.shape, strides: output.strides, into: output.base)
    }

    /// `LayerNorm(x)` of a tensor `[..., d]`.
    public func callAsFunction(_ x: Tensor<Float>) throws -> Tensor<Float> {
        var result = [Float](repeating: 0, count: x.scalars.count)
        try x.withView { view in
            try result.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!
                try forward(input: view, output: MutableTensorView(base: base, shape: x.shape, strides: x.strides))
            }
        }
        return Tensor(uncheckedShape: x.shape, scalars: result)
    }

    /// Normalises `rows` contiguous rows of `d` floats. `output` may equal `input`.
    ///
    /// As PyTorch's CPU kernel: mean and biased variance per row, `rstd = 1 / sqrt(var + eps)`,
    /// then `y = (x * rstd + (-rstd * mean)) * weight + bias`. Sums run in 16 float lanes in a
    /// fixed order, so every row gives the same bits wherever it runs.
    static func normalizeRows(_ input: UnsafePointer<Float>, rows: Int, d: Int, _ p: Parameters,
                              into output: UnsafeMutablePointer<Float>) {
        p.weight.withUnsafeBufferPointer { weightBuffer in
            p.bias.withUnsafeBufferPointer { biasBuffer in
                let weight = weightBuffer.baseAddress!, bias = biasBuffer.baseAddress!
                for r in 0..<rows {
                    let x = input + r * d
                    let y = output + r * d
                    let mean = laneSum(x, d) { $0 } / Float(d)
                    let variance = laneSum(x, d) { ($0 - mean) * ($0 - mean) } / Float(d)
                    let rstd = 1 / (max(variance, 0) + p.eps).squareRoot()
                    let shift = -rstd * mean
                    for j in 0..<d {
                        y[j] = (x[j] * rstd + shift) * weight[j] + bias[j]
                    }
                }
            }
        }
    }

    /// `sum(f(x[i]))` over 16 lanes (lane `l` takes `i = l, l + 16, ...`), folded in a fixed order.
    @inline(__always)
    static func laneSum(_ x: UnsafePointer<Float>, _ count: Int, _ f: (SIMD16<Float>) -> SIMD16<Float>) -> Float {
        var lanes = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= count {
            lanes += f(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
            i += 16
        }
        if i < count {
            var tail = SIMD16<Float>(repeating: 0)
            var mask = SIMDMask<SIMD16<Float>.MaskStorage>(repeating: false)
            for j in 0..<(count - i) {
                tail[j] = x[i + j]
                mask[j] = true
            }
            lanes += f(tail).replacing(with: 0, where: .!mask)
        }
        let half8 = lanes.lowHalf + lanes.highHalf
        let half4 = half8.lowHalf + half8.highHalf
        let half2 = half4.lowHalf + half4.highHalf
        return half2[0] + half2[1]
    }
}
