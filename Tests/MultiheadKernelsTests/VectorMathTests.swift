import Foundation
@testable import MultiheadKernels
import XCTest

/// The vector math: each variant bit-identical to the Swift reference, the reference within the
/// documented error of double-precision exp, the special values exact.
final class VectorMathTests: XCTestCase {
    private var variants: [VectorMath.Functions] { supportedISAs.map { VectorMath.Functions(isa: $0) } }

    /// Documented bound: 1.02 ulp for normal results, 0.75 x 2^-149 for subnormal ones.
    private func assertWithinDocumentedError(_ x: Float, _ y: Float, file: StaticString = #filePath, line: UInt = #line) {
        let exact = Foundation.exp(Double(x))
        if exact > Double(Float.greatestFiniteMagnitude) * (1 + 0x1p-25) {
            XCTAssertEqual(y, .infinity, "exp(\(x))", file: file, line: line)
            return
        }
        let error = abs(Double(y) - exact)
        if exact < Double(Float.leastNormalMagnitude) {
            XCTAssertLessThanOrEqual(error, 0.75 * 0x1p-149, "exp(\(x)) = \(y)", file: file, line: line)
        } else {
            let ulp = Double(Float(exact).ulp)
            XCTAssertLessThanOrEqual(error, 1.02 * ulp, "exp(\(x)) = \(y), exact \(exact)", file: file, line: line)
        }
    }

    func testExpSpecialValues() {
        let inputs: [Float] = [
            -.infinity, -1000, -104, -103.98, -103.9, -87.34, -87.3, -1, -.leastNonzeroMagnitude, -0.0, 0,
            .leastNonzeroMagnitude, 1e-30, 1, 10, 88.72, 88.7228, 88.73, 89, 1000, .infinity, .nan,
        ]
        for functions in variants {
            var outputs = [Float](repeating: 42, count: inputs.count)
            functions.exp(inputs, &outputs, inputs.count)
            for (x, y) in zip(inputs, outputs) {
                if x.isNaN { XCTAssertTrue(y.isNaN, "\(functions.isa)"); continue }
                if x == -.infinity || x <= -104 { XCTAssertEqual(y.bitPattern, Float(0).bitPattern, "\(functions.isa) exp(\(x))") }
                if x == 0 { XCTAssertEqual(y, 1, "\(functions.isa) exp(\(x))") }
                if x >= 88.73 { XCTAssertEqual(y, .infinity, "\(functions.isa) exp(\(x))") }
                assertWithinDocumentedError(x, y)
            }
        }
    }

    func testExpAccuracyAndVariantsAgree() {
        var random = TestRandom(seed: 8)
        // Dense in the softmax range [-30, 0], plus the whole finite range and the subnormal band.
        var inputs: [Float] = (0..<20_000).map { _ in random.float() * 15 - 15 }
        inputs += (0..<20_000).map { _ in random.float() * 96 - 8 }
        inputs += (0..<5_000).map { _ in -87.3 - abs(random.float()) * 17 }
        var expected = [Float](repeating: 0, count: inputs.count)
        VectorMath.Reference.exp(inputs, &expected, inputs.count)
        for (x, y) in zip(inputs, expected) { assertWithinDocumentedError(x, y) }
        for functions in variants {
            for count in [inputs.count, 0, 1, 15, 16, 17, 31] {
                var outputs = [Float](repeating: 7, count: inputs.count)
                functions.exp(inputs, &outputs, count)
                for i in 0..<count where outputs[i].bitPattern != expected[i].bitPattern {
                    XCTFail("\(functions.isa) exp(\(inputs[i])) = \(outputs[i]), reference \(expected[i])")
                    return
                }
                // Nothing written past count.
                XCTAssertTrue(outputs[count...].allSatisfy { $0 == 7 }, "\(functions.isa) count \(count)")
            }
        }
    }

    func testMaximum() {
        var random = TestRandom(seed: 9)
        for functions in variants {
            XCTAssertEqual(functions.max([], 0), -.infinity)
            for count in 1...40 {
                var x = random.floats(count)
                XCTAssertEqual(functions.max(x, count), x.max()!, "\(functions.isa) count \(count)")
                x[count - 1] = 5
                XCTAssertEqual(functions.max(x, count), 5, "\(functions.isa) max in the tail")
                x[count / 2] = .nan
                XCTAssertTrue(functions.max(x, count).isNaN, "\(functions.isa) NaN propagates")
                let masked = [Float](repeating: -.infinity, count: count)
                XCTAssertEqual(functions.max(masked, count), -.infinity)
            }
        }
    }

    func testExpSubtractingSum() {
        var random = TestRandom(seed: 10)
        for count in 0...70 {
            var x = random.floats(count).map { $0 * 20 }
            for i in stride(from: 0, to: count, by: 7) { x[i] = -.infinity }
            let m = x.max() ?? 0
            var expected = [Float](repeating: 0, count: count)
            let expectedSum = VectorMath.Reference.expSubtractingSum(x, m, &expected, count)
            let exactSum = x.reduce(0.0) { $0 + ($1 == -.infinity ? 0 : Foundation.exp(Double($1) - Double(m))) }
            XCTAssertEqual(Double(expectedSum), exactSum, accuracy: 1e-6 * Swift.max(1, exactSum))
            for functions in variants {
                var y = [Float](repeating: 3, count: count + 1)
                let sum = functions.expSubtractingSum(x, m, &y, count)
                XCTAssertEqual(sum.bitPattern, expectedSum.bitPattern, "\(functions.isa) count \(count)")
                XCTAssertEqual(Array(y[0..<count]).map(\.bitPattern), expected.map(\.bitPattern), "\(functions.isa)")
                XCTAssertEqual(y[count], 3, "\(functions.isa) wrote past count")
                // In place.
                var inPlace = x
                let sumInPlace = functions.expSubtractingSum(inPlace, m, &inPlace, count)
                XCTAssertEqual(sumInPlace.bitPattern, expectedSum.bitPattern)
                XCTAssertEqual(inPlace.map(\.bitPattern), expected.map(\.bitPattern))
            }
        }
    }

    func testFullyMaskedRowGivesZeros() {
        let x = [Float](repeating: -.infinity, count: 21)
        for functions in variants {
            var y = [Float](repeating: 9, count: 21)
            XCTAssertEqual(functions.expSubtractingSum(x, -.infinity, &y, 21), 0, "\(functions.isa)")
            XCTAssertTrue(y.allSatisfy { $0.bitPattern == 0 }, "\(functions.isa)")
            var nan: [Float] = [1, .nan, 2]
            XCTAssertTrue(functions.expSubtractingSum(nan, 2, &nan, 3).isNaN)
            XCTAssertTrue(nan[1].isNaN)
            XCTAssertEqual(nan[2], 1)
        }
    }

    func testPublicEntryPoints() {
        let x: [Float] = [0, 1, -.infinity, 2]
        var y = [Float](repeating: 0, count: 4)
        VectorMath.exp(x, into: &y, count: 4)
        XCTAssertEqual(y[0], 1)
        XCTAssertEqual(y[2], 0)
        XCTAssertEqual(VectorMath.maximum(x, count: 4), 2)
        let sum = VectorMath.expSubtractingSum(x, subtracting: 2, into: &y, count: 4)
        XCTAssertEqual(Double(sum), Foundation.exp(-2.0) + Foundation.exp(-1.0) + 1, accuracy: 1e-6)
        XCTAssertEqual(VectorMath.isa, KernelISA.selected)
    }
}
