import XCTest
@testable import Multihead

/// Calls whose scratch passes the engine's `scratchLimit` run their heads in groups. Checked
/// against the float64 reference and against the same module on an engine that never groups:
/// projections, attention and weights are the same bits (any split of a GEMM's columns is), only
/// the output projection's sum is split by group.
final class HeadGroupTests: XCTestCase {
    struct Case {
        var E, H, L, S, N: Int
        var kdim: Int? = nil, vdim: Int? = nil
        var batchFirst = false, unbatched = false, addBiasKV = false, addZeroAttn = false
        var causal = false, needWeights = false, average = true, kpm = false, attn3D = false
        var crossAttention = false
    }

    static let ungrouped = try! Engine(options: .init(threads: 2, scratchLimit: Int.max))

    /// Runs `c` on an engine with `limit`, checks that it grouped heads as expected, and compares.
    func check(_ c: Case, limit: Int, threads: Int = 2, expectedGroupSize: Int, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let engine = try Engine(options: .init(threads: threads, scratchLimit: limit))
        func module(_ engine: Engine) throws -> MultiheadAttention {
            let m = try MultiheadAttention(embedDim: c.E, numHeads: c.H, addBiasKV: c.addBiasKV, addZeroAttn: c.addZeroAttn,
                                           kdim: c.kdim, vdim: c.vdim, batchFirst: c.batchFirst, seed: seed, engine: engine)
            var rng = SeededGenerator(seed: seed &+ 99)
            for (name, shape) in m.parameterShapes where name.contains("bias") {
                try m.setParameter(name, Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.nextNormal() }))
            }
            return m
        }
        let grouped = try module(engine), whole = try module(Self.ungrouped)
        func layout(_ seq: Int, _ features: Int) -> [Int] {
            c.unbatched ? [seq, features] : (c.batchFirst ? [c.N, seq, features] : [seq, c.N, features])
        }
        let q = try Tensor<Float>(randomNormal: layout(c.L, c.E), seed: seed &+ 1)
        let selfAttention = !c.crossAttention && c.kdim == nil && c.vdim == nil && c.L == c.S
        let k = selfAttention ? q : try Tensor<Float>(randomNormal: layout(c.S, c.kdim ?? c.E), seed: seed &+ 2)
        let v = selfAttention ? q : try Tensor<Float>(randomNormal: layout(c.S, c.vdim ?? c.E), seed: seed &+ 3)
        let N = c.unbatched ? 1 : c.N
        var rng = SeededGenerator(seed: seed &+ 7)
        let kpm: Mask? = !c.kpm ? nil : .bool(try Tensor(shape: c.unbatched ? [c.S] : [N, c.S],
                                                         scalars: (0..<N * c.S).map { $0 % c.S != 0 && rng.next() % 4 == 0 }))
        let attn: Mask? = !c.attn3D ? nil : .float(try Tensor(shape: [N * c.H, c.L, c.S],
                                                              scalars: (0..<N * c.H * c.L * c.S).map { _ in rng.nextUniform(bound: 2) }))

        let plan = try grouped.makePlan(query: q.view, key: k.view, value: v.view, keyPaddingMask: nil, attnMask: nil,
                                        options: ForwardOptions(needWeights: c.needWeights, averageAttnWeights: c.average,
                                                                isCausal: c.causal))
        XCTAssertEqual(grouped.headsPerGroup(plan), expectedGroupSize, "heads per group \(c)", file: file, line: line)

        let (out, w) = try grouped(q, k, v, keyPaddingMask: kpm, needWeights: c.needWeights, attnMask: attn,
                                   averageAttnWeights: c.average, isCausal: c.causal)
        let (wholeOut, wholeW) = try whole(q, k, v, keyPaddingMask: kpm, needWeights: c.needWeights, attnMask: attn,
                                           averageAttnWeights: c.average, isCausal: c.causal)
        let reference = ReferenceAttention(config: grouped.config, parameters: grouped.stateDict().mapValues(\.scalars))(
            query: q, key: k, value: v, keyPaddingMask: kpm, attnMask: attn, needWeights: c.needWeights,
            average: c.average, isCausal: c.causal)
        XCTAssertEqual(out.shape, wholeOut.shape, file: file, line: line)
        XCTAssertLessThan(relativeError(out.scalars, reference.output), 2e-5, "output vs reference \(c)", file: file, line: line)
        XCTAssertLessThan(relativeError(out.scalars, wholeOut.scalars.map(Double.init)), 1e-5, "output vs ungrouped \(c)",
                          file: file, line: line)
        if c.needWeights {
            XCTAssertEqual(w!.scalars.map(\.bitPattern), wholeW!.scalars.map(\.bitPattern), "weights bits \(c)",
                           file: file, line: line)
        }
        // The grouping depends on the limit, never on threads: the same bits on one thread.
        let single = try Engine(options: .init(threads: 1, scratchLimit: limit))
        let one = try module(single)
        let (oneOut, _) = try one(q, k, v, keyPaddingMask: kpm, needWeights: c.needWeights, attnMask: attn,
                                  averageAttnWeights: c.average, isCausal: c.causal)
        XCTAssertEqual(oneOut.scalars.map(\.bitPattern), out.scalars.map(\.bitPattern), "1 vs \(threads) threads \(c)",
                       file: file, line: line)
    }

    /// Bytes of scratch per head of `c`, as `headsPerGroup` counts them.
    func perHead(_ c: Case, selfAttention: Bool) -> Int {
        let keyCount = c.S + (c.addBiasKV ? 1 : 0) + (c.addZeroAttn ? 1 : 0)
        let projected = selfAttention ? 3 * max(c.L, keyCount) : c.L + 2 * keyCount
        let packed = c.L > 64 ? 2 * keyCount : 0
        return (c.unbatched ? 1 : c.N) * (projected + c.L + packed) * (c.E / c.H) * 4
    }

    func testSelfAttentionOneHeadPerGroup() throws {
        let c = Case(E: 32, H: 4, L: 70, S: 70, N: 2)
        try check(c, limit: 1, expectedGroupSize: 1, seed: 1)
        try check(c, limit: perHead(c, selfAttention: true) * 4, expectedGroupSize: 4, seed: 2)
        try check(c, limit: perHead(c, selfAttention: true) * 4 - 1, expectedGroupSize: 3, seed: 3)
    }

    func testUnevenGroupsWithWeightsAndMasks() throws {
        var c = Case(E: 30, H: 5, L: 67, S: 67, N: 3, needWeights: true, kpm: true)
        let limit = perHead(c, selfAttention: true) * 2
        try check(c, limit: limit, expectedGroupSize: 2, seed: 4)
        c.average = false
        c.attn3D = true
        try check(c, limit: limit, expectedGroupSize: 2, seed: 5)
        c.kpm = false
        c.attn3D = false
        c.causal = true
        c.batchFirst = true
        try check(c, limit: limit, threads: 3, expectedGroupSize: 2, seed: 6)
    }

    func testCrossAttentionBiasKVZeroAttnUnbatched() throws {
        var c = Case(E: 24, H: 3, L: 65, S: 90, N: 2, kdim: 7, vdim: 11, addBiasKV: true, addZeroAttn: true, needWeights: true)
        try check(c, limit: perHead(c, selfAttention: false), expectedGroupSize: 1, seed: 7)
        c.unbatched = true
        c.kdim = nil
        c.vdim = nil
        c.crossAttention = true
        try check(c, limit: perHead(c, selfAttention: false) * 2, expectedGroupSize: 2, seed: 8)
        c.L = 10  // one query block: keys and values are not packed, which the count follows
        try check(c, limit: perHead(c, selfAttention: false), expectedGroupSize: 1, seed: 9)
    }

    func testDefaultLimitGroupsLongSequences() throws {
        let m = try MultiheadAttention(embedDim: 1024, numHeads: 16, engine: Self.ungrouped)
        let defaultEngine = try Engine(options: .init(threads: 1))
        XCTAssertEqual(defaultEngine.scratchLimit, 32 << 20)
        let grouped = try MultiheadAttention(embedDim: 1024, numHeads: 16, engine: defaultEngine)
        for (L, expected) in [(2048, 10), (4096, 5), (16384, 1)] {
            let shape = [L, 1, 1024]
            let x = TensorView(base: UnsafeRawPointer(bitPattern: 64)!, element: .float32, shape: shape,
                               strides: Tensor<Float>.contiguousStrides(shape))
            let plan = try grouped.makePlan(query: x, key: x, value: x, keyPaddingMask: nil, attnMask: nil, options: ForwardOptions())
            XCTAssertEqual(grouped.headsPerGroup(plan), expected, "L=\(L)")
            XCTAssertEqual(m.headsPerGroup(plan), 16, "L=\(L) without a limit")
        }
    }

    /// The memory check counts one group's scratch: a call that needs more than this machine's
    /// memory only when all heads run at once is accepted with a limit and refused without one.
    func testMemoryCheckCountsOneGroup() throws {
        let grouped = try MultiheadAttention(embedDim: 1024, numHeads: 16, engine: try Engine(options: .init(threads: 1)))
        let whole = try MultiheadAttention(embedDim: 1024, numHeads: 16, engine: Self.ungrouped)
        let L = 1 << 22  // one head: 6 GiB of scratch; all 16: 96 GiB
        let x = TensorView(base: UnsafeRawPointer(bitPattern: 64)!, element: .float32, shape: [L, 1, 1024], strides: [0, 0, 1])
        let plan = try grouped.makePlan(query: x, key: x, value: x, keyPaddingMask: nil, attnMask: nil, options: ForwardOptions())
        XCTAssertEqual(grouped.headsPerGroup(plan), 1)
        guard physicalMemoryBytes < 96 << 30 else { throw XCTSkip("this machine has 96 GiB or more") }
        XCTAssertThrowsError(try whole.makePlan(query: x, key: x, value: x, keyPaddingMask: nil, attnMask: nil,
                                                options: ForwardOptions())) { error in
            XCTAssertTrue("\(error)".contains("the scratch buffers of a forward call"), "\(error)")
        }
    }

    /// `describe()` plans what `run` does: head groups, and weights from the attention tiles.
    func testDescribeShowsHeadGroupsAndWhereWeightsAreMade() throws {
        let engine = try Engine(options: .init(threads: 2))
        let long = engine.describe(shape: try PlanShape(batch: 1, heads: 16, seqLen: 16384, embedDim: 1024)).plan!
        XCTAssertEqual(long.headsPerGroup, 1)
        XCTAssertEqual(long.headGroups, 16)
        XCTAssertEqual(long.phases.first?.segments, ["q", "k", "v"])
        let bert = engine.describe(shape: try PlanShape(batch: 8, heads: 12, seqLen: 128, embedDim: 768, needWeights: true)).plan!
        XCTAssertEqual(bert.headGroups, 1)
        XCTAssertEqual(bert.phases.map(\.name), ["projections", "kv_packing", "attention", "output"])
        XCTAssertEqual(bert.phases[2].segments, ["query blocks (heads in order, with weights)"])
        XCTAssertEqual(bert.phases[3].segments, ["rows x columns"])
        // More keys than one block: the separate weights pass.
        let wide = engine.describe(shape: try PlanShape(batch: 8, heads: 12, seqLen: 128, sourceLen: 300, embedDim: 768,
                                                        needWeights: true)).plan!
        XCTAssertEqual(wide.phases[3].segments, ["rows x columns", "weights"])
    }

    func testNonPositiveLimitIsAnError() {
        for limit in [0, -5] {
            XCTAssertThrowsError(try Engine(options: .init(threads: 1, scratchLimit: limit))) { error in
                XCTAssertTrue("\(error)".contains("scratch limit must be positive, got \(limit)"), "\(error)")
            }
        }
    }
}

private extension Tensor where Scalar == Float {
    var view: TensorView {
        scalars.withUnsafeBufferPointer {
            TensorView(base: UnsafeRawPointer($0.baseAddress!), element: .float32, shape: shape, strides: strides)
        }
    }
}
