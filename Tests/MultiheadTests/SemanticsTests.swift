import XCTest
@testable import Multihead

/// The documented differences from PyTorch and other behaviour the fixtures do not pin down.
final class SemanticsTests: XCTestCase {
    func testFullyMaskedRowsGiveOutProjBiasAndZeroWeights() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2, seed: 3)
        try m.setParameter("out_proj.bias", Tensor(shape: [4], scalars: [1, 2, 3, 4]))
        let x = try Tensor<Float>(randomNormal: [3, 2, 4], seed: 4)
        let kpm = Mask.bool(try Tensor(shape: [2, 3], scalars: [true, true, true, false, true, false]))
        let (out, w) = try m(x, x, x, keyPaddingMask: kpm)
        for l in 0..<3 {
            XCTAssertEqual(Array(out.scalars[(l * 2) * 4 ..< (l * 2) * 4 + 4]), [1, 2, 3, 4], "batch 0 is fully masked")
        }
        XCTAssertEqual(w!.scalars[0..<9].allSatisfy { $0 == 0 }, true)
        XCTAssert(out.scalars.allSatisfy(\.isFinite))
        let rowSums = (3..<6).map { r in w!.scalars[r * 3 ..< r * 3 + 3].reduce(0, +) }
        for s in rowSums { XCTAssertEqual(s, 1, accuracy: 1e-6) }
    }

    func testLargeLogitsStayFinite() throws {
        let m = try MultiheadAttention(embedDim: 8, numHeads: 2, seed: 5)
        var x = try Tensor<Float>(randomNormal: [4, 1, 8], seed: 6)
        x.scalars = x.scalars.map { $0 * 1e4 }
        let (out, w) = try m(x, x, x)
        XCTAssert(out.scalars.allSatisfy(\.isFinite))
        XCTAssert(w!.scalars.allSatisfy(\.isFinite))
    }

    func testEmptySequencesAndBatches() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2, seed: 1)
        try m.setParameter("out_proj.bias", Tensor(shape: [4], scalars: [1, 2, 3, 4]))
        let q = try Tensor<Float>(randomNormal: [2, 1, 4], seed: 1)
        let none = try Tensor<Float>(zeros: [0, 1, 4])
        let (out, w) = try m(q, none, none)
        XCTAssertEqual(out.shape, [2, 1, 4])
        XCTAssertEqual(out.scalars, [1, 2, 3, 4, 1, 2, 3, 4], "no keys: zero attention")
        XCTAssertEqual(w!.shape, [1, 2, 0])
        let (empty, _) = try m(try Tensor<Float>(zeros: [0, 3, 4]), try Tensor<Float>(zeros: [2, 3, 4]), try Tensor<Float>(zeros: [2, 3, 4]))
        XCTAssertEqual(empty.shape, [0, 3, 4])
    }

    func testInitialisationFollowsPyTorchDistributions() throws {
        let m = try MultiheadAttention(embedDim: 64, numHeads: 4, addBiasKV: true, seed: 42)
        let w = try m.parameter("in_proj_weight").scalars
        let bound = (6.0 / Double(64 + 192)).squareRoot()
        XCTAssert(w.allSatisfy { abs(Double($0)) <= bound })
        XCTAssertGreaterThan(w.map { abs(Double($0)) }.max()!, 0.9 * bound)
        XCTAssert(try m.parameter("in_proj_bias").scalars.allSatisfy { $0 == 0 })
        XCTAssert(try m.parameter("out_proj.bias").scalars.allSatisfy { $0 == 0 })
        let o = try m.parameter("out_proj.weight").scalars
        XCTAssert(o.allSatisfy { abs($0) <= 1 / 8 })
        let bk = try m.parameter("bias_k").scalars.map(Double.init)
        let std = (bk.map { $0 * $0 }.reduce(0, +) / Double(bk.count)).squareRoot()
        XCTAssertEqual(std, 1 / 8, accuracy: 0.05)
        let again = try MultiheadAttention(embedDim: 64, numHeads: 4, addBiasKV: true, seed: 42)
        XCTAssertEqual(try again.parameter("in_proj_weight").scalars, w, "seeded: reproducible")
    }

    func testStridedViewsNeedNoCopies() throws {
        // A (N, L, E) buffer read through strides as (L, N, E) gives the same as a copy.
        let m = try MultiheadAttention(embedDim: 6, numHeads: 3, seed: 2)
        let N = 2, L = 3, E = 6
        let nle = try Tensor<Float>(randomNormal: [N, L, E], seed: 9)
        var lne = [Float](repeating: 0, count: N * L * E)
        for n in 0..<N { for l in 0..<L { for e in 0..<E { lne[(l * N + n) * E + e] = nle.scalars[(n * L + l) * E + e] } } }
        let contiguous = try Tensor(shape: [L, N, E], scalars: lne)
        let (expected, _) = try m(contiguous, contiguous, contiguous, needWeights: false)
        var out = [Float](repeating: 0, count: L * N * E)
        try nle.scalars.withUnsafeBytes { raw in
            let view = TensorView(base: raw.baseAddress!, element: .float32, shape: [L, N, E], strides: [E, L * E, 1])
            try out.withUnsafeMutableBufferPointer { o in
                try m.forward(query: view, key: view, value: view, options: ForwardOptions(needWeights: false),
                              output: MutableTensorView(base: o.baseAddress!, shape: [L, N, E], strides: [N * E, E, 1]), weights: nil)
            }
        }
        XCTAssertEqual(out.map(\.bitPattern), expected.scalars.map(\.bitPattern))
    }

    /// Big enough to run on several workers: the bits must not depend on the thread count.
    func testBitIdenticalAcrossThreadCountsOnParallelShapes() throws {
        let q = try Tensor<Float>(randomNormal: [150, 3, 64], seed: 1)
        let kv = try Tensor<Float>(randomNormal: [300, 3, 64], seed: 2)
        let kpm = Mask.bool(try Tensor(shape: [3, 300], scalars: (0..<900).map { $0 % 7 == 3 }))
        for average in [true, false] {
            var results: [[UInt32]] = []
            for threads in [1, 2, 3, 5] {
                let m = try MultiheadAttention(embedDim: 64, numHeads: 4, addBiasKV: true, seed: 3, engine: try Engine(threads: threads))
                let (o, w) = try m(q, kv, kv, keyPaddingMask: kpm, averageAttnWeights: average, isCausal: true)
                results.append((o.scalars + w!.scalars).map(\.bitPattern))
            }
            for r in results.dropFirst() { XCTAssertEqual(r, results[0], "average=\(average)") }
        }
    }

    /// With every key in one block, attention tiles write the weights themselves when there are
    /// enough (batch, query block) tiles for the workers (N=4, 2 blocks: up to 4 threads), else a
    /// second pass does: both must give the same bits, averaged or per head, with masks.
    func testWeightsFromAttentionTilesAndFromTheSecondPassAreTheSameBits() throws {
        let q = try Tensor<Float>(randomNormal: [100, 4, 64], seed: 4)
        let kv = try Tensor<Float>(randomNormal: [200, 4, 64], seed: 5)
        let kpm = Mask.bool(try Tensor(shape: [4, 200], scalars: (0..<800).map { $0 % 5 == 2 }))
        let attn = Mask.float(try Tensor(randomNormal: [100, 200], seed: 6))
        for (average, causal) in [(true, false), (false, true), (true, true)] {
            var results: [[UInt32]] = []
            for threads in [1, 2, 3, 5] {  // fused on up to 4 threads, a second pass on 5
                let m = try MultiheadAttention(embedDim: 64, numHeads: 4, addZeroAttn: true, seed: 7,
                                               engine: try Engine(threads: threads))
                let (o, w) = try m(q, kv, kv, keyPaddingMask: kpm, attnMask: causal ? nil : attn,
                                   averageAttnWeights: average, isCausal: causal)
                results.append((o.scalars + w!.scalars).map(\.bitPattern))
            }
            for (i, r) in results.enumerated().dropFirst() {
                XCTAssertTrue(r == results[0], "threads #\(i): \(zip(r, results[0]).filter { $0 != $1 }.count) values differ, average=\(average) causal=\(causal)")
            }
        }
    }
}
