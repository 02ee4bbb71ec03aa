extension VectorMath {
    /// The vector math in portable Swift: the fallback, and the oracle the C variants must match
    /// bit for bit. Each step mirrors `CMultiheadKernels/vector_math_common.h` and the C code.
    enum Reference {
        // The constants of vector_math_common.h.
        static let lowest: Float = -104.0
        static let highest: Float = 88.8
        static let log2e: Float = 1.44269504088896341
        static let ln2High: Float = 0.693359375
        static let ln2Low: Float = -2.12194440e-4
        static let p0: Float = 1.9875691500e-4
        static let p1: Float = 1.3981999507e-3
        static let p2: Float = 8.3334519073e-3
        static let p3: Float = 4.1665795894e-2
        static let p4: Float = 1.6666665459e-1
        static let p5: Float = 5.0000001201e-1
        /// Adding and subtracting 1.5 * 2^23 rounds |t| < 2^22 to an integer, ties to even.
        static let roundingShift: Float = 12582912

        /// exp(x) by the documented steps: Cody-Waite reduction, Cephes polynomial, 2^n in one rounding.
        @inline(__always)
        static func exp(_ x: Float) -> Float {
            if x.isNaN { return x + x }  // the C variants let the NaN flow through instead
            let clamped = Swift.min(Swift.max(x, lowest), highest)
            let n = (clamped * log2e + roundingShift) - roundingShift
            var r = clamped.addingProduct(-n, ln2High)
            r = r.addingProduct(-n, ln2Low)
            var y = p0
            y = p1.addingProduct(y, r)
            y = p2.addingProduct(y, r)
            y = p3.addingProduct(y, r)
            y = p4.addingProduct(y, r)
            y = p5.addingProduct(y, r)
            y = r.addingProduct(y, r * r)
            y = y + 1
            // y * 2^n with n in [-150, 128] as y * 2^half * 2^rest: the first product is exact.
            let exponent = Int32(n)
            let half = exponent >> 1
            let rest = exponent - half
            return y * Float(bitPattern: UInt32(half + 127) << 23) * Float(bitPattern: UInt32(rest + 127) << 23)
        }

        static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
            for i in 0..<count { y[i] = exp(x[i]) }
        }

        static func max(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
            var best = -Float.infinity
            for i in 0..<count {
                let v = x[i]
                if v.isNaN { return .nan }
                if v > best { best = v }
            }
            return best
        }

        static func expSubtractingSum(
            _ x: UnsafePointer<Float>, _ m: Float, _ y: UnsafeMutablePointer<Float>, _ count: Int
        ) -> Float {
            var lanes = [Float](repeating: 0, count: 16)
            for i in 0..<count {
                let v = x[i]
                let e = exp(v == -.infinity ? -.infinity : v - m)
                y[i] = e
                lanes[i % 16] = lanes[i % 16] + e
            }
            var width = 8
            while width >= 1 {
                for l in 0..<width { lanes[l] = lanes[l] + lanes[l + width] }
                width /= 2
            }
            return lanes[0]
        }
    }
}
