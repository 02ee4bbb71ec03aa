import Foundation

// TEMPORARY until the kernels work lands VectorMath with ISA variants.
public enum VectorMath {
    /// Largest element of `x[0..<count]` (-inf for an empty row).
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        return m
    }

    /// `y[i] = exp(x[i] - m)`, returning the sum of `y`. `x` and `y` may alias.
    public static func expSubtractingSum(_ x: UnsafePointer<Float>, subtracting m: Float, into y: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var sum: Float = 0
        for i in 0..<count {
            let e = Foundation.exp(x[i] - m)
            y[i] = e
            sum += e
        }
        return sum
    }
}
