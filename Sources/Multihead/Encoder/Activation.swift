import Foundation
import MultiheadKernels

/// The activations of `torch.nn.TransformerEncoderLayer`: `"relu"` and `"gelu"` (the exact,
/// erf-based GELU, PyTorch's `approximate='none'`).
public enum Activation: String, Sendable, CaseIterable, CustomStringConvertible {
    case relu
    case gelu

    public var description: String { rawValue }

    /// Parses PyTorch's names ("relu", "gelu").
    /// - Throws: `MultiheadError.invalidArgument` for anything else, naming the accepted values.
    public init(name: String) throws {
        guard let value = Activation(rawValue: name) else {
            throw MultiheadError.invalidArgument("activation should be relu/gelu, not \(name)")
        }
        self = value
    }

    /// Applies the activation in place to `count` contiguous floats.
    func apply(_ x: UnsafeMutablePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) {
        switch self {
        case .relu:
            // max(x, 0) with NaN kept, as torch.relu.
            for i in 0..<count where x[i] < 0 { x[i] = 0 }
        case .gelu:
            var start = 0
            while start < count {
                let n = Swift.min(GELU.chunk, count - start)
                GELU.apply(x + start, count: n, scratch: scratch)
                start += n
            }
        }
    }
}

/// `gelu(x) = x / 2 * (1 + erf(x / sqrt 2)) = x / 2 * erfc(-x / sqrt 2)`.
///
/// The erfc form has no cancellation for negative `x`. erfc is Numerical Recipes' `erfcc`
/// (Chebyshev fit, relative error < 1.2e-7 for every argument): with `a = |z|`,
/// `t = 1 / (1 + a / 2)`, `erfc(a) = t * exp(-a^2 + P(t))` and `erfc(-a) = 2 - erfc(a)`.
/// Measured against float64 over [-12, 12]: absolute error < 1e-7 * max(|x|, 1) and relative
/// error < 2.1e-6 (the float rounding of `a^2` inside exp; PyTorch's float kernel, whose erf is
/// good to 1.5e-7 absolute, gives 2.8e-7 and, for x near -3, 1e-3 relative). The exponentials of a
/// chunk go through `VectorMath.exp` (SIMD kernels); the rest is plain loops the compiler
/// vectorises. Pure elementwise: the same bits for an element wherever it is computed.
enum GELU {
    /// Elements per call of the vector exp (scratch needs `2 * chunk` floats).
    static let chunk = 256

    @inline(__always)
    static func polynomial(_ t: Float) -> Float {
        var p: Float = 0.17087277
        p = p * t - 0.82215223
        p = p * t + 1.48851587
        p = p * t - 1.13520398
        p = p * t + 0.27886807
        p = p * t - 0.18628806
        p = p * t + 0.09678418
        p = p * t + 0.37409196
        p = p * t + 1.00002368
        return p * t - 1.26551223
    }

    static func apply(_ x: UnsafeMutablePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) {
        let argument = scratch, tValues = scratch + chunk
        let halfSqrt2: Float = 0.70710678118654752
        for i in 0..<count {
            let a = Swift.abs(x[i] * halfSqrt2)
            let t = 1 / (1 + 0.5 * a)
            tValues[i] = t
            argument[i] = polynomial(t) - a * a
        }
        VectorMath.exp(argument, into: argument, count: count)
        for i in 0..<count {
            let e = tValues[i] * argument[i]
            // z = -x / sqrt 2: erfc(z) = e for z >= 0 (x <= 0), 2 - e otherwise.
            let value = x[i]
            let erfc = value > 0 ? 2 - e : e
            x[i] = 0.5 * value * erfc
        }
    }
}
