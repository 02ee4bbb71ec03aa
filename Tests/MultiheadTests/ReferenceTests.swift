import XCTest
@testable import Multihead

/// The engine against the independent float64 reference: qdim (which PyTorch lacks) and random
/// shapes and options, with sizes that cross the kernels' block boundaries.
final class ReferenceTests: XCTestCase {
    struct Case {
        var E, H, L, S, N: Int
        var qdim: Int?, kdim: Int?, vdim: Int?
        var batchFirst = false, unbatched = false, bias = true, addBiasKV = false, addZeroAttn = false
        var causal = false, needWeights = true, average = true
        var kpm: Bool? = nil          // nil: none, true: bool, false: float
        var attn: (bool: Bool, threeD: Bool)? = nil
    }

    func run(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try MultiheadAttention(embedDim: c.E, numHeads: c.H, bias: c.bias, addBiasKV: c.addBiasKV,
                                       addZeroAttn: c.addZeroAttn, kdim: c.kdim, vdim: c.vdim, qdim: c.qdim,
                                       batchFirst: c.batchFirst, seed: seed)
        // Nonzero biases, so that bias handling is checked.
        var rng = SeededGenerator(seed: seed &+ 99)
        for (name, shape) in m.parameterShapes where name.contains("bias") {
            try m.setParameter(name, Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.nextNormal() }))
        }
        func layout(_ seq: Int, _ features: Int) -> [Int] {
            c.unbatched ? [seq, features] : (c.batchFirst ? [c.N, seq, features] : [seq, c.N, features])
        }
        let q = try Tensor<Float>(randomNormal: layout(c.L, c.qdim ?? c.E), seed: seed &+ 1)
        let k = try Tensor<Float>(randomNormal: layout(c.S, c.kdim ?? c.E), seed: seed &+ 2)
        let v = try Tensor<Float>(randomNormal: layout(c.S, c.vdim ?? c.E), seed: seed &+ 3)
        let N = c.unbatched ? 1 : c.N
        var kpm: Mask? = nil
        if let kind = c.kpm {
            // Mask roughly a quarter of the keys, never key 0 (so no row is fully masked here).
            let shape = c.unbatched ? [c.S] : [c.N, c.S]
            let flags = (0..<shape.reduce(1, *)).map { i in i % c.S != 0 && rng.next() % 4 == 0 }
            kpm = kind ? .bool(try Tensor(shape: shape, scalars: flags))
                       : .float(try Tensor(shape: shape, scalars: flags.map { $0 ? -Float.infinity : rng.nextUniform(bound: 1) }))
        }
        var attn: Mask? = nil
        if let a = c.attn {
            let shape = a.threeD ? [N * c.H, c.L, c.S] : [c.L, c.S]
            let flags = (0..<shape.reduce(1, *)).map { i in i % c.S != 0 && rng.next() % 3 == 0 }
            attn = a.bool ? .bool(try Tensor(shape: shape, scalars: flags))
                          : .float(try Tensor(shape: shape, scalars: flags.map { $0 ? -1e9 : rng.nextUniform(bound: 2) }))
        }
        let (out, w) = try m(q, k, v, keyPaddingMask: kpm, needWeights: c.needWeights, attnMask: attn,
                             averageAttnWeights: c.average, isCausal: c.causal)
        let reference = ReferenceAttention(config: m.config, parameters: m.stateDict().mapValues(\.scalars))(
            query: q, key: k, value: v, keyPaddingMask: kpm, attnMask: attn, needWeights: c.needWeights,
            average: c.average, isCausal: c.causal)
        XCTAssertLessThan(relativeError(out.scalars, reference.output), 2e-5, "output \(c)", file: file, line: line)
        if c.needWeights {
            XCTAssertLessThan(relativeError(w!.scalars, reference.weights!), 2e-5, "weights \(c)", file: file, line: line)
        }
    }

    func testSeedExampleTwoWithQdim() throws {
        try run(Case(E: 4, H: 2, L: 2, S: 2, N: 5, qdim: 8, kdim: 6, vdim: 4), seed: 7)
        try run(Case(E: 4, H: 2, L: 2, S: 2, N: 5, qdim: 8, kdim: 6, vdim: 4, batchFirst: true, unbatched: false), seed: 8)
        try run(Case(E: 6, H: 3, L: 3, S: 4, N: 1, qdim: 5, unbatched: true, addBiasKV: true, kpm: true), seed: 9)
    }

    func testQdimParameterShapes() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2, kdim: 6, vdim: 4, qdim: 8)
        XCTAssertEqual(try m.parameterShape("q_proj_weight"), [4, 8])
        XCTAssertEqual(try m.parameterShape("k_proj_weight"), [4, 6])
        XCTAssertEqual(try m.parameterShape("v_proj_weight"), [4, 4])
        XCTAssertThrowsError(try m.parameterShape("in_proj_weight"))
    }

    /// Sizes past the attention blocks (64 queries, 128 keys) and the GEMM's register tiles.
    func testLargeShapesCrossBlockBoundaries() throws {
        try run(Case(E: 24, H: 3, L: 130, S: 260, N: 2, needWeights: true, average: false), seed: 11)
        try run(Case(E: 16, H: 2, L: 200, S: 200, N: 1, causal: true, needWeights: true, kpm: false), seed: 12)
        try run(Case(E: 12, H: 4, L: 65, S: 129, N: 2, kdim: 7, vdim: 9, batchFirst: true, addBiasKV: true, addZeroAttn: true,
                     needWeights: true, attn: (bool: false, threeD: true)), seed: 13)
    }

    func testRandomShapesAndOptions() throws {
        var rng = SeededGenerator(seed: 2024)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        for i in 0..<60 {
            let H = pick([1, 2, 3, 4])
            let E = H * pick([1, 2, 3, 5, 8])
            var c = Case(E: E, H: H, L: pick([1, 2, 5, 9, 17]), S: pick([1, 3, 8, 19]), N: pick([1, 2, 3]))
            c.qdim = pick([nil, nil, 3, 7]); c.kdim = pick([nil, 2, 9]); c.vdim = pick([nil, 4])
            c.batchFirst = pick([true, false]); c.unbatched = pick([true, false, false]); c.bias = pick([true, false])
            c.addBiasKV = pick([true, false]); c.addZeroAttn = pick([true, false]); c.needWeights = pick([true, false])
            c.average = pick([true, false]); c.kpm = pick([nil, true, false])
            c.attn = pick([nil, (true, false), (false, false), (true, true), (false, true)])
            c.causal = c.attn == nil && pick([true, false])
            try run(c, seed: UInt64(100 + i))
        }
    }

    /// isCausal without a mask: the top-left causal mask (PyTorch raises instead).
    func testIsCausalWithoutMaskIsTopLeftCausal() throws {
        try run(Case(E: 8, H: 2, L: 5, S: 7, N: 2, causal: true), seed: 21)
        try run(Case(E: 8, H: 2, L: 7, S: 3, N: 2, causal: true, needWeights: true, average: false), seed: 22)
    }
}
