import Foundation
import XCTest
@testable import Multihead

/// Numerical edge cases, and the behaviour the README documents for them:
/// - logits of any finite size are stable (the running max is subtracted before exp);
/// - a key hidden from every query but one gets all the weight, exactly (weights 1 and 0);
/// - +inf added by a float mask gives NaN for that row, as softmax does in PyTorch;
/// - NaN spreads only to what depends on it: a query row's NaN to that row's output and weights,
///   a key's NaN to every row of its batch (unless a bool mask hides that key), a value's NaN to
///   every output row of its batch but not to the weights; other rows keep the same bits;
/// - denormal inputs are computed as IEEE numbers (the kernels do not flush them to zero).
final class NumericsTests: XCTestCase {
    /// A module with random parameters (biases included) on its own small engine.
    func module(E: Int = 8, H: Int = 2, bias: Bool = true, seed: UInt64 = 3) throws -> MultiheadAttention {
        let m = try MultiheadAttention(embedDim: E, numHeads: H, bias: bias, seed: seed)
        var rng = SeededGenerator(seed: seed &+ 1)
        for (name, shape) in m.parameterShapes where name.contains("bias") {
            try m.setParameter(name, Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.nextNormal() }))
        }
        return m
    }

    func reference(_ m: MultiheadAttention, _ q: Tensor<Float>, _ k: Tensor<Float>, _ v: Tensor<Float>,
                   kpm: Mask? = nil, attn: Mask? = nil, average: Bool = true) -> (output: [Double], weights: [Double]?) {
        ReferenceAttention(config: m.config, parameters: m.stateDict().mapValues(\.scalars))(
            query: q, key: k, value: v, keyPaddingMask: kpm, attnMask: attn, needWeights: true, average: average, isCausal: false)
    }

    func scaled(_ t: Tensor<Float>, _ factor: Float) throws -> Tensor<Float> {
        try Tensor(shape: t.shape, scalars: t.scalars.map { $0 * factor })
    }

    func replacing(_ t: Tensor<Float>, _ index: Int, with value: Float) throws -> Tensor<Float> {
        var scalars = t.scalars
        scalars[index] = value
        return try Tensor(shape: t.shape, scalars: scalars)
    }

    // MARK: Large and tiny logits

    func testLargeLogitsAreStable() throws {
        let m = try module()
        let (L, S, N) = (5, 7, 2)
        // Inputs of size ~100 make scores of size ~1e4; float32 keeps them to ~1e-3 absolute.
        let q = try scaled(Tensor(randomNormal: [L, N, 8], seed: 1), 100)
        let k = try scaled(Tensor(randomNormal: [S, N, 8], seed: 2), 100)
        let v = try Tensor<Float>(randomNormal: [S, N, 8], seed: 3)
        let (out, w) = try m(q, k, v)
        XCTAssert(out.scalars.allSatisfy(\.isFinite) && w!.scalars.allSatisfy(\.isFinite))
        let expected = reference(m, q, k, v)
        XCTAssertLessThan(relativeError(out.scalars, expected.output), 2e-2)
        for row in 0..<(N * L) {
            let sum = w!.scalars[(row * S)..<((row + 1) * S)].reduce(0, +)
            XCTAssertEqual(sum, 1, accuracy: 1e-5, "weights row \(row) sums to \(sum)")
        }
    }

    func testHugeFloatMaskValues() throws {
        let m = try module()
        let (L, S) = (3, 4)
        let x = try Tensor<Float>(randomNormal: [L, 1, 8], seed: 4)
        let kv = try Tensor<Float>(randomNormal: [S, 1, 8], seed: 5)
        // +1e30 on one key per row: that key takes all the weight, exactly.
        var mask = [Float](repeating: 0, count: L * S)
        for l in 0..<L { mask[l * S + (l + 1) % S] = 1e30 }
        let (_, w) = try m(x, kv, kv, attnMask: .float(try Tensor(shape: [L, S], scalars: mask)))
        for l in 0..<L {
            XCTAssertEqual(Array(w!.scalars[(l * S)..<((l + 1) * S)]), (0..<S).map { $0 == (l + 1) % S ? 1 : 0 })
        }
        // 1e38 everywhere: every score is ~1e38, equal in float32, so the weights are uniform.
        let flat = try Tensor<Float>(shape: [L, S], scalars: [Float](repeating: 1e38, count: L * S))
        let (out, w2) = try m(x, kv, kv, attnMask: .float(flat))
        XCTAssert(out.scalars.allSatisfy(\.isFinite))
        for value in w2!.scalars { XCTAssertEqual(value, 1 / Float(S), accuracy: 1e-6) }
    }

    func testTinyLogitsGiveUniformWeights() throws {
        let m = try module(bias: false)
        let (L, S) = (4, 6)
        // Scores of ~1e-40 (denormal) or 0: softmax is uniform.
        let q = try scaled(Tensor(randomNormal: [L, 2, 8], seed: 6), 1e-20)
        let k = try scaled(Tensor(randomNormal: [S, 2, 8], seed: 7), 1e-20)
        let v = try Tensor<Float>(randomNormal: [S, 2, 8], seed: 8)
        let (out, w) = try m(q, k, v)
        for value in w!.scalars { XCTAssertEqual(value, 1 / Float(S), accuracy: 1e-7) }
        XCTAssertLessThan(relativeError(out.scalars, reference(m, q, k, v).output), 2e-5)
    }

    // MARK: Masks that leave one key

    func testMinusInfinityEverywhereButOneKey() throws {
        let m = try module()
        let (L, S, N, H) = (4, 5, 2, 2)
        let q = try Tensor<Float>(randomNormal: [L, N, 8], seed: 9)
        let k = try Tensor<Float>(randomNormal: [S, N, 8], seed: 10)
        let v = try Tensor<Float>(randomNormal: [S, N, 8], seed: 11)
        // Per (batch, head) mask: row l of (n, h) keeps only key (l + n + h) % S.
        func kept(_ n: Int, _ h: Int, _ l: Int) -> Int { (l + n + h) % S }
        var values = [Float](repeating: -.infinity, count: N * H * L * S)
        var flags = [Bool](repeating: true, count: N * H * L * S)
        for n in 0..<N { for h in 0..<H { for l in 0..<L {
            values[((n * H + h) * L + l) * S + kept(n, h, l)] = 0
            flags[((n * H + h) * L + l) * S + kept(n, h, l)] = false
        } } }
        for mask in [Mask.float(try Tensor(shape: [N * H, L, S], scalars: values)), .bool(try Tensor(shape: [N * H, L, S], scalars: flags))] {
            let (out, w) = try m(q, k, v, attnMask: mask, averageAttnWeights: false)
            for n in 0..<N { for h in 0..<H { for l in 0..<L {
                let row = Array(w!.scalars[(((n * H + h) * L + l) * S)..<(((n * H + h) * L + l + 1) * S)])
                XCTAssertEqual(row, (0..<S).map { $0 == kept(n, h, l) ? 1 : 0 }, "weights (n \(n), h \(h), l \(l))")
            } } }
            XCTAssertLessThan(relativeError(out.scalars, reference(m, q, k, v, attn: mask, average: false).output), 2e-5)
        }
    }

    func testPositiveInfinityInAFloatMaskGivesNaNInThatRow() throws {
        let m = try module()
        let (L, S) = (3, 4)
        let q = try Tensor<Float>(randomNormal: [L, 1, 8], seed: 12)
        let k = try Tensor<Float>(randomNormal: [S, 1, 8], seed: 13)
        let zeros = try Tensor<Float>(zeros: [L, S])
        let poisoned = try replacing(zeros, 1 * S + 2, with: .infinity)  // row 1, key 2
        let (clean, cleanW) = try m(q, k, k, attnMask: .float(zeros))
        let (out, w) = try m(q, k, k, attnMask: .float(poisoned))
        for l in 0..<L {
            let row = Array(out.scalars[(l * 8)..<((l + 1) * 8)])
            let weights = Array(w!.scalars[(l * S)..<((l + 1) * S)])
            if l == 1 {
                XCTAssert(row.allSatisfy(\.isNaN) && weights.allSatisfy(\.isNaN), "row 1: \(row), \(weights)")
            } else {
                XCTAssertEqual(row.map(\.bitPattern), clean.scalars[(l * 8)..<((l + 1) * 8)].map(\.bitPattern))
                XCTAssertEqual(weights.map(\.bitPattern), cleanW!.scalars[(l * S)..<((l + 1) * S)].map(\.bitPattern))
            }
        }
    }

    // MARK: NaN in inputs

    /// Compares two results row by row: rows in `poisoned` must be all NaN (output, and weights
    /// when `weightsPoisoned`), the others must have the same bits as `clean`.
    func assertRows(_ result: (output: Tensor<Float>, weights: Tensor<Float>?), _ clean: (output: Tensor<Float>, weights: Tensor<Float>?),
                    L: Int, N: Int, E: Int, S: Int, poisoned: (Int, Int) -> Bool, weightsPoisoned: Bool,
                    file: StaticString = #filePath, line: UInt = #line) {
        for l in 0..<L {
            for n in 0..<N {
                let o = (l * N + n) * E, w = (n * L + l) * S
                let row = Array(result.output.scalars[o..<(o + E)]), cleanRow = Array(clean.output.scalars[o..<(o + E)])
                let weights = Array(result.weights!.scalars[w..<(w + S)]), cleanWeights = Array(clean.weights!.scalars[w..<(w + S)])
                if poisoned(l, n) {
                    XCTAssert(row.allSatisfy(\.isNaN), "output (l \(l), n \(n)) should be NaN: \(row)", file: file, line: line)
                    if weightsPoisoned {
                        XCTAssert(weights.allSatisfy(\.isNaN), "weights (n \(n), l \(l)) should be NaN: \(weights)", file: file, line: line)
                    } else {
                        XCTAssertEqual(weights.map(\.bitPattern), cleanWeights.map(\.bitPattern), "weights (n \(n), l \(l))", file: file, line: line)
                    }
                } else {
                    XCTAssertEqual(row.map(\.bitPattern), cleanRow.map(\.bitPattern), "output (l \(l), n \(n)) changed", file: file, line: line)
                    XCTAssertEqual(weights.map(\.bitPattern), cleanWeights.map(\.bitPattern), "weights (n \(n), l \(l)) changed", file: file, line: line)
                }
            }
        }
    }

    func testNaNInAQueryRowStaysInThatRow() throws {
        let m = try module()
        let (L, S, N, E) = (5, 6, 2, 8)
        let q = try Tensor<Float>(randomNormal: [L, N, E], seed: 14)
        let k = try Tensor<Float>(randomNormal: [S, N, E], seed: 15)
        let v = try Tensor<Float>(randomNormal: [S, N, E], seed: 16)
        let clean = try m(q, k, v)
        let result = try m(try replacing(q, (2 * N + 1) * E + 3, with: .nan), k, v)  // query l = 2, n = 1
        assertRows(result, clean, L: L, N: N, E: E, S: S, poisoned: { $0 == 2 && $1 == 1 }, weightsPoisoned: true)
    }

    func testNaNInAKeySpreadsOverItsBatchUnlessABoolMaskHidesIt() throws {
        let m = try module()
        let (L, S, N, E) = (4, 5, 2, 8)
        let q = try Tensor<Float>(randomNormal: [L, N, E], seed: 17)
        let k = try Tensor<Float>(randomNormal: [S, N, E], seed: 18)
        let v = try Tensor<Float>(randomNormal: [S, N, E], seed: 19)
        let poisonedKey = try replacing(k, (3 * N + 0) * E + 1, with: .nan)  // key s = 3 of batch 0
        assertRows(try m(q, poisonedKey, v), try m(q, k, v), L: L, N: N, E: E, S: S,
                   poisoned: { _, n in n == 0 }, weightsPoisoned: true)
        // A bool mask hides the key whatever its score: batch 0 is finite, as if the key were anything.
        var flags = [Bool](repeating: false, count: N * S)
        flags[0 * S + 3] = true
        let kpm = Mask.bool(try Tensor(shape: [N, S], scalars: flags))
        let hidden = try m(q, poisonedKey, v, keyPaddingMask: kpm)
        let reference = try m(q, k, v, keyPaddingMask: kpm)
        XCTAssertEqual(hidden.output.scalars.map(\.bitPattern), reference.output.scalars.map(\.bitPattern))
        XCTAssertEqual(hidden.weights!.scalars.map(\.bitPattern), reference.weights!.scalars.map(\.bitPattern))
        // A float -inf mask is added, and NaN + -inf is NaN: the batch is NaN, as in PyTorch.
        let floatKpm = Mask.float(try Tensor(shape: [N, S], scalars: flags.map { $0 ? -.infinity : 0 }))
        assertRows(try m(q, poisonedKey, v, keyPaddingMask: floatKpm), try m(q, k, v, keyPaddingMask: floatKpm),
                   L: L, N: N, E: E, S: S, poisoned: { _, n in n == 0 }, weightsPoisoned: true)
    }

    func testNaNInAValueSpreadsOverItsBatchOutputButNotTheWeights() throws {
        let m = try module()
        let (L, S, N, E) = (4, 5, 2, 8)
        let q = try Tensor<Float>(randomNormal: [L, N, E], seed: 20)
        let k = try Tensor<Float>(randomNormal: [S, N, E], seed: 21)
        let v = try Tensor<Float>(randomNormal: [S, N, E], seed: 22)
        let poisoned = try replacing(v, (1 * N + 1) * E + 5, with: .nan)  // value s = 1 of batch 1
        assertRows(try m(q, k, poisoned), try m(q, k, v), L: L, N: N, E: E, S: S,
                   poisoned: { _, n in n == 1 }, weightsPoisoned: false)
    }

    func testInfinityInAnInputDoesNotCrash() throws {
        let m = try module()
        let q = try replacing(Tensor<Float>(randomNormal: [3, 2, 8], seed: 23), 0, with: .infinity)
        let k = try replacing(Tensor<Float>(randomNormal: [4, 2, 8], seed: 24), 1, with: -.infinity)
        let (out, w) = try m(q, k, k)
        XCTAssertEqual(out.shape, [3, 2, 8])
        XCTAssertEqual(w!.shape, [2, 3, 4])
        // Both infinities are in batch 0 (element 0 of the query, element 1 of the key): batch 1 stays finite.
        for l in 0..<3 { XCTAssert(out.scalars[((l * 2 + 1) * 8)..<((l * 2 + 2) * 8)].allSatisfy(\.isFinite)) }
        XCTAssert(w!.scalars[12...].allSatisfy(\.isFinite))
    }

    // MARK: Denormals

    /// Identity projections, no bias, zero queries: the output is the mean of the value rows, so
    /// denormal values must come out as denormals, not zeros.
    func denormalRun(E: Int, H: Int, L: Int, S: Int, N: Int) throws {
        let m = try MultiheadAttention(embedDim: E, numHeads: H, bias: false)
        var identity3 = [Float](repeating: 0, count: 3 * E * E)
        for block in 0..<3 { for i in 0..<E { identity3[(block * E + i) * E + i] = 1 } }
        try m.setParameter("in_proj_weight", Tensor(shape: [3 * E, E], scalars: identity3))
        try m.setParameter("out_proj.weight", Tensor(shape: [E, E], scalars: Array(identity3[0..<(E * E)])))
        let q = try Tensor<Float>(zeros: [L, N, E])
        let tiny = Float.leastNormalMagnitude  // 1.2e-38; a quarter of it is denormal
        let v = try Tensor<Float>(shape: [S, N, E], scalars: (0..<(S * N * E)).map { Float($0 % 7 + 1) * tiny / 16 })
        XCTAssert(v.scalars.allSatisfy(\.isSubnormal))
        let (out, w) = try m(q, v, v)
        for value in w!.scalars { XCTAssertEqual(value, 1 / Float(S), accuracy: 1e-6) }
        let expected = reference(m, q, v, v).output
        var worst = 0.0
        for (a, e) in zip(out.scalars, expected) {
            XCTAssert(a != 0, "a denormal result was flushed to zero (expected \(e))")
            worst = max(worst, abs(Double(a) - e) / e)
        }
        // Denormals carry fewer significant bits: a few ulps of the smallest denormal.
        XCTAssertLessThan(worst, 1e-2, "E \(E), L \(L), S \(S): relative error \(worst)")
    }

    func testDenormalsAreNotFlushed() throws {
        try denormalRun(E: 4, H: 2, L: 3, S: 5, N: 2)       // runs on the calling thread
        try denormalRun(E: 64, H: 4, L: 70, S: 70, N: 2)    // workers and the SIMD kernels
    }
}
