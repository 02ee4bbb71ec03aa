import CMultiheadKernels

/// Vectorised float math for the online softmax: exp, row maximum, and `exp(x - m)` with its sum.
///
/// Each function runs the C variant of `KernelISA.selected` (AVX-512 or AVX2) or the Swift
/// reference (`VectorMath.Reference`); all variants give the same bits, sums included (only a
/// NaN's payload may differ).
///
/// exp accuracy (every float checked against double-precision exp): at most 1.02 ulp for
/// normal results (relative error <= 8.5e-8); subnormal results within 0.75 of the subnormal
/// spacing 2^-149. Exactly: exp(-inf) = 0, exp(x <= -104) = 0, exp(x) = +inf once the rounded
/// result overflows (x > 88.7228), exp(NaN) = NaN, exp(+-0) = 1.
///
/// Pointers may alias elementwise (`y == x` is allowed); `count >= 0`.
public enum VectorMath {
    /// The variant these functions run.
    public static var isa: KernelISA { functions.isa }

    /// `y[i] = exp(x[i])`.
    /// - Parameters:
    ///   - x: `[count]` inputs.
    ///   - y: `[count]` outputs.
    @inlinable
    public static func exp(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        functions.exp(x, y, count)
    }

    /// The largest of `x[0..<count]`: NaN if any element is NaN, -inf when `count == 0`
    /// (which zero is returned when the maximum is +-0 is unspecified).
    /// - Parameter x: `[count]`.
    @inlinable
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        functions.max(x, count)
    }

    /// The softmax step: `y[i] = exp(x[i] - m)`, returning the sum of the `y`.
    ///
    /// An `x[i]` of -inf gives 0 even when `m` is -inf, so a fully masked row gives zeros and
    /// a sum of 0. The sum runs in 16 lanes (lane `l` adds `y[l], y[l + 16], ...` in order) folded
    /// pairwise (`l + 8`, `+ 4`, `+ 2`, `+ 1`): fixed, whatever the variant or thread.
    /// - Parameters:
    ///   - x: `[count]` scores.
    ///   - m: the running maximum (normally `>= max(x)`, so every `y <= 1`).
    ///   - y: `[count]` outputs.
    /// - Returns: `sum(y)`.
    @inlinable
    public static func expSubtractingSum(
        _ x: UnsafePointer<Float>, subtracting m: Float, into y: UnsafeMutablePointer<Float>, count: Int
    ) -> Float {
        functions.expSubtractingSum(x, m, y, count)
    }

    @usableFromInline
    static let functions = Functions(isa: .selected)

    /// The functions of one variant, C or Swift, behind one call shape.
    @usableFromInline
    struct Functions: @unchecked Sendable {
        let isa: KernelISA
        @usableFromInline let exp: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
        @usableFromInline let max: (UnsafePointer<Float>, Int) -> Float
        @usableFromInline let expSubtractingSum: (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>, Int) -> Float

        /// The variant of `isa`, or of the best supported one below it.
        init(isa requested: KernelISA) {
            let table = mh_vector_math_for_isa(Swift.min(requested, KernelISA.best).cValue)
            if let cExp = table.exp, let cMax = table.max, let cExpSubSum = table.exp_sub_sum {
                isa = Swift.min(requested, KernelISA.best)
                exp = { x, y, n in cExp(x, y, Int64(n)) }
                max = { x, n in cMax(x, Int64(n)) }
                expSubtractingSum = { x, m, y, n in cExpSubSum(x, m, y, Int64(n)) }
            } else {
                isa = .portable
                exp = Reference.exp
                max = Reference.max
                expSubtractingSum = Reference.expSubtractingSum
            }
        }
    }
}
