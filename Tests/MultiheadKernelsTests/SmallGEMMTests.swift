import CMultiheadKernels
@testable import MultiheadKernels
import XCTest

/// The direct path of small products (`GEMM+Direct.swift`, `mh_f32_gemm_small_*`): bit for bit
/// the blocked path's results, for every variant, shape, layout and epilogue.
final class SmallGEMMTests: XCTestCase {
    /// One problem: C (+)= scale * (A B + bias), with the operands in `TestMatrix` layouts.
    struct Problem {
        var a: TestMatrix
        var b: TestMatrix
        var c: TestMatrix
        var bias: [Float]?
        var scale: Float
        var accumulate: Bool

        init(
            m: Int, n: Int, k: Int, layouts: (a: TestLayout, b: TestLayout, c: TestLayout), withBias: Bool,
            scale: Float, accumulate: Bool, random: inout TestRandom
        ) {
            a = TestMatrix(rows: m, cols: k, layout: layouts.a, random: &random)
            b = TestMatrix(rows: k, cols: n, layout: layouts.b, random: &random)
            c = TestMatrix(rows: m, cols: n, layout: layouts.c, random: &random)
            bias = withBias ? random.floats(Swift.max(n, 1)) : nil
            self.scale = scale
            self.accumulate = accumulate
        }

        var description: String {
            "\(a.rows)x\(b.cols)x\(a.cols) bias \(bias != nil) scale \(scale) accumulate \(accumulate)"
        }

        /// C after `body` ran on the operands.
        func run(_ body: (GEMMOperands, MatrixView) -> Void) -> TestMatrix {
            var c = self.c
            let (scale, accumulate) = (self.scale, self.accumulate)
            a.withView { av in
                b.withView { bv in
                    c.withMutableView { cv in
                        withOptionalPointer(bias) { bias in
                            body(GEMMOperands(a: av, c: cv, bias: bias, scale: scale, accumulate: accumulate), bv)
                        }
                    }
                }
            }
            return c
        }
    }

    /// Every path on one problem: the blocked loops (unpacked and packed B, default and tiny
    /// caches), the direct kernel of `isa` (unpacked and packed), its Swift twin and the public
    /// `multiply` must give the oracle's bits, and write nothing between C's elements.
    private func checkAllPaths(_ problem: Problem, isa: KernelISA, file: StaticString = #filePath, line: UInt = #line) {
        let m = problem.a.rows, n = problem.b.cols, k = problem.a.cols
        var expected = problem.c
        if m > 0 && n > 0 {
            oracleMultiply(
                problem.a, problem.b, bias: problem.bias, scale: problem.scale, accumulate: problem.accumulate,
                into: &expected)
        }
        let context = "\(isa) \(problem.description)"
        var results: [(String, TestMatrix)] = []
        results.append(("direct unpacked", problem.run { operands, b in GEMM.multiplyDirect(operands, unpacked: b, isa: isa) }))
        results.append(("Swift twin", problem.run { operands, b in
            let args = mh_f32_microkernel_args(
                sums_in: nil, bias: operands.bias, scale: operands.scale, flags: operands.epilogueFlags)
            GEMM.directReference(
                m: m, n: n, k: k, a: operands.a.base, aRowStride: operands.a.rowStride,
                aColStride: operands.a.colStride, b: b.base, bRowStride: b.rowStride, bColStride: b.colStride,
                c: operands.c.base, cRowStride: operands.c.rowStride, cColStride: operands.c.colStride, args: args)
        }))
        for caches in [CacheSizes(), GEMMTests.tinyCaches] {
            let workspace = GEMMWorkspace(cacheSizes: caches, isa: isa)
            let packed = problem.b.withView { PackedMatrix($0, cacheSizes: caches, isa: isa) }
            let label = caches == GEMMTests.tinyCaches ? " tiny caches" : ""
            if m > 0 && n > 0 {
                results.append(("blocked unpacked" + label, problem.run { operands, b in
                    GEMM.loopOverColumnBlocks(operands, unpacked: b, workspace: workspace)
                }))
                results.append(("blocked packed" + label, problem.run { operands, _ in
                    GEMM.loopOverColumnBlocks(operands, packed: packed, columns: 0..<n, workspace: workspace)
                }))
            }
            if k <= packed.blocking.kc && n > 0 {
                results.append(("direct packed" + label, problem.run { operands, _ in
                    GEMM.multiplyDirect(operands, packed: packed, columns: 0..<n)
                }))
            }
            results.append(("multiply unpacked" + label, problem.run { operands, b in
                GEMM.multiply(
                    operands.a, b, bias: operands.bias, scale: operands.scale, accumulate: operands.accumulate,
                    into: operands.c, workspace: workspace)
            }))
            results.append(("multiply packed" + label, problem.run { operands, _ in
                GEMM.multiply(
                    operands.a, packed, columns: 0..<n, bias: operands.bias, scale: operands.scale,
                    accumulate: operands.accumulate, into: operands.c, workspace: workspace)
            }))
        }
        for (name, result) in results {
            assertSameBits(result, expected, "\(name) \(context)", file: file, line: line)
            for index in problem.c.storage.indices where problem.c.storage[index].isNaN && !result.storage[index].isNaN {
                XCTFail("\(name) \(context): wrote outside C", file: file, line: line)
                break
            }
        }
    }

    func testRandomShapesLayoutsAndEpiloguesMatchTheBlockedPath() {
        var random = TestRandom(seed: 11)
        let layouts = TestLayout.allCases
        for isa in supportedISAs {
            for trial in 0..<64 {
                // m up to 37 crosses the 8- and 4-row tiles; n up to 70 the 1- and 2-vector ones
                // of both variants (16 and 8 lanes) and several 16-column panels.
                let m = random.int(1...37), n = random.int(1...70), k = random.int(1...40)
                let problem = Problem(
                    m: m, n: n, k: k,
                    layouts: (layouts[trial % 4], layouts[(trial / 4) % 4], layouts[(trial / 16) % 4]),
                    withBias: trial % 2 == 0, scale: trial % 3 == 0 ? 1 : 0.3, accumulate: trial % 5 < 2,
                    random: &random)
                checkAllPaths(problem, isa: isa)
            }
        }
    }

    func testEdgeSizes() {
        var random = TestRandom(seed: 12)
        let sizes: [(Int, Int, Int)] = [
            (0, 0, 0), (0, 5, 3), (4, 0, 3), (3, 5, 0), (1, 1, 0), (1, 1, 1), (1, 17, 1), (17, 1, 1), (2, 2, 2),
            (10, 12, 4), (10, 4, 4), (7, 8, 3), (8, 7, 3), (9, 9, 9), (8, 16, 5), (8, 17, 5), (4, 32, 2), (5, 33, 2),
            (16, 16, 16), (3, 1, 100), (1, 100, 1), (33, 15, 7),
        ]
        for isa in supportedISAs {
            for (index, (m, n, k)) in sizes.enumerated() {
                for accumulate in [false, true] {
                    let layouts: (TestLayout, TestLayout, TestLayout) = index % 2 == 0
                        ? (.rowMajor, .rowMajor, .rowMajor) : (.strided, .columnMajor, .paddedRows)
                    let problem = Problem(
                        m: m, n: n, k: k, layouts: layouts, withBias: index % 3 != 0, scale: 0.5,
                        accumulate: accumulate, random: &random)
                    checkAllPaths(problem, isa: isa)
                }
            }
        }
    }

    /// Shapes at and just past each bound of `prefersDirect`, and packed Bs one row deeper than
    /// KC (default and tiny caches): the same bits on both sides of every switch.
    func testThresholdBoundaries() {
        var random = TestRandom(seed: 13)
        let limit = GEMM.directProductLimit, strided = GEMM.directStridedProductLimit
        XCTAssertTrue(GEMM.prefersDirect(m: 64, n: 64, k: 64, bColumnStride: 1))
        XCTAssertEqual(64 * 64 * 64, limit)
        XCTAssertFalse(GEMM.prefersDirect(m: 64, n: 64, k: 65, bColumnStride: 1))
        XCTAssertTrue(GEMM.prefersDirect(m: 8, n: 32, k: 32, bColumnStride: 7))
        XCTAssertEqual(8 * 32 * 32, strided)
        XCTAssertFalse(GEMM.prefersDirect(m: 9, n: 32, k: 32, bColumnStride: 7))
        XCTAssertFalse(GEMM.prefersDirect(m: 1, n: 8192, k: 1, bColumnStride: 7), "copy bound")
        XCTAssertFalse(GEMM.prefersDirect(m: 1024, n: 1024, k: 1024, bColumnStride: 1))
        // Seed-tiny attention: projections, scores, P V, output projection.
        for (m, n, k) in [(10, 12, 4), (2, 2, 2), (10, 4, 4)] {
            XCTAssertTrue(GEMM.prefersDirect(m: m, n: n, k: k, bColumnStride: 1))
            XCTAssertTrue(GEMM.prefersDirect(m: m, n: n, k: k, bColumnStride: 9))
        }
        let shapes: [(Int, Int, Int, TestLayout)] = [
            (64, 64, 64, .rowMajor), (64, 64, 65, .rowMajor), (65, 64, 64, .paddedRows),
            (8, 32, 32, .columnMajor), (9, 32, 32, .columnMajor), (1, 1, 300, .rowMajor), (1, 2, 257, .columnMajor),
            (3, 3, 16, .rowMajor), (3, 3, 17, .rowMajor), (2, 40, 256, .rowMajor), (2, 40, 257, .rowMajor),
        ]
        for isa in supportedISAs {
            for (m, n, k, layout) in shapes {
                let problem = Problem(
                    m: m, n: n, k: k, layouts: (.rowMajor, layout, .rowMajor), withBias: true, scale: 0.25,
                    accumulate: true, random: &random)
                checkAllPaths(problem, isa: isa)
            }
        }
    }

    /// The C kernels against their Swift twin on what the GEMM never sends them: raw sums (no
    /// epilogue), a strided B too large for the stack copy (the scalar path), negative strides.
    func testKernelsAgainstTheSwiftTwinBeyondTheDispatch() {
        var random = TestRandom(seed: 14)
        for isa in supportedISAs {
            guard let kernel = mh_f32_gemm_small_for_isa(isa.cValue) else {
                XCTAssertEqual(isa, .portable)
                continue
            }
            let cases: [(m: Int, n: Int, k: Int, b: TestLayout, flags: UInt32, negative: Bool)] = [
                (5, 19, 7, .rowMajor, 0, false),
                (6, 100, 50, .columnMajor, UInt32(MH_MICROKERNEL_EPILOGUE | MH_MICROKERNEL_ACCUMULATE), false),
                (3, 70, 60, .strided, UInt32(MH_MICROKERNEL_EPILOGUE), false),
                (9, 33, 11, .paddedRows, UInt32(MH_MICROKERNEL_EPILOGUE | MH_MICROKERNEL_ACCUMULATE), true),
                (9, 13, 11, .columnMajor, UInt32(MH_MICROKERNEL_EPILOGUE), true),
            ]
            for test in cases {
                let a = TestMatrix(rows: test.m, cols: test.k, layout: .rowMajor, random: &random)
                let b = TestMatrix(rows: test.k, cols: test.n, layout: test.b, random: &random)
                let bias = random.floats(test.n)
                let initial = TestMatrix(rows: test.m, cols: test.n, layout: .paddedRows, random: &random)
                var fromC = initial, fromSwift = initial
                a.withView { av in
                    b.withView { bv in
                        // negative: A's columns and B's rows read backwards (p from k - 1 down).
                        let av = test.negative
                            ? MatrixView(base: av.base + (test.k - 1) * av.colStride, rows: av.rows, cols: av.cols,
                                         rowStride: av.rowStride, colStride: -av.colStride) : av
                        let bv = test.negative
                            ? MatrixView(base: bv.base + (test.k - 1) * bv.rowStride, rows: bv.rows, cols: bv.cols,
                                         rowStride: -bv.rowStride, colStride: bv.colStride) : bv
                        bias.withUnsafeBufferPointer { bias in
                            var args = mh_f32_microkernel_args(sums_in: nil, bias: bias.baseAddress, scale: 0.7, flags: test.flags)
                            fromC.withMutableView { cv in
                                kernel(
                                    Int64(test.m), Int64(test.n), Int64(test.k), av.base, Int64(av.rowStride),
                                    Int64(av.colStride), bv.base, Int64(bv.rowStride), Int64(bv.colStride), cv.base,
                                    Int64(cv.rowStride), Int64(cv.colStride), &args)
                            }
                            fromSwift.withMutableView { cv in
                                GEMM.directReference(
                                    m: test.m, n: test.n, k: test.k, a: av.base, aRowStride: av.rowStride,
                                    aColStride: av.colStride, b: bv.base, bRowStride: bv.rowStride,
                                    bColStride: bv.colStride, c: cv.base, cRowStride: cv.rowStride,
                                    cColStride: cv.colStride, args: args)
                            }
                        }
                    }
                }
                assertSameBits(fromC, fromSwift, "\(isa) \(test)")
            }
        }
    }

    /// Against float64 sums within the rounding-error bound of a k-term fma chain and the
    /// three epilogue roundings: the direct path computes the product, not just some bits.
    func testAgainstAFloat64Reference() {
        var random = TestRandom(seed: 15)
        for isa in supportedISAs {
            for trial in 0..<24 {
                let m = random.int(1...20), n = random.int(1...40), k = random.int(0...64)
                let problem = Problem(
                    m: m, n: n, k: k, layouts: (.rowMajor, trial % 2 == 0 ? .rowMajor : .columnMajor, .rowMajor),
                    withBias: trial % 3 != 0, scale: trial % 2 == 0 ? 1 : -0.375, accumulate: trial % 4 == 1,
                    random: &random)
                let result = problem.run { operands, b in GEMM.multiplyDirect(operands, unpacked: b, isa: isa) }
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = 0.0, magnitude = 0.0
                        for p in 0..<k {
                            let term = Double(problem.a[i, p]) * Double(problem.b[p, j])
                            exact += term
                            magnitude += abs(term)
                        }
                        if let bias = problem.bias {
                            exact += Double(bias[j])
                            magnitude += abs(Double(bias[j]))
                        }
                        exact *= Double(problem.scale)
                        magnitude *= abs(Double(problem.scale))
                        if problem.accumulate {
                            exact += Double(problem.c[i, j])
                            magnitude += abs(Double(problem.c[i, j]))
                        }
                        let bound = Double(k + 3) * Double(Float.ulpOfOne) * magnitude + Double(Float.leastNormalMagnitude)
                        let error = abs(Double(result[i, j]) - exact)
                        if error > bound {
                            XCTFail("\(isa) \(problem.description): C[\(i), \(j)] = \(result[i, j]), exact \(exact)")
                            return
                        }
                    }
                }
            }
        }
    }

    /// The bit comparison can fail: the same sums taken in decreasing p (a reordering the
    /// contract forbids) differ from the direct path's somewhere.
    func testABackwardsSumIsCaught() {
        var random = TestRandom(seed: 16)
        let problem = Problem(
            m: 12, n: 20, k: 33, layouts: (.rowMajor, .rowMajor, .rowMajor), withBias: false, scale: 1,
            accumulate: false, random: &random)
        let forwards = problem.run { operands, b in GEMM.multiplyDirect(operands, unpacked: b, isa: .selected) }
        let backwards = problem.run { operands, b in
            let k = operands.a.cols
            let a = MatrixView(
                base: operands.a.base + (k - 1), rows: operands.a.rows, cols: k, rowStride: operands.a.rowStride,
                colStride: -1)
            let b = MatrixView(base: b.base + (k - 1) * b.rowStride, rows: k, cols: b.cols, rowStride: -b.rowStride)
            GEMM.multiplyDirect(
                GEMMOperands(a: a, c: operands.c, bias: nil, scale: 1, accumulate: false), unpacked: b, isa: .selected)
        }
        let differing = (0..<12).flatMap { i in (0..<20).map { (i, $0) } }
            .filter { forwards[$0.0, $0.1].bitPattern != backwards[$0.0, $0.1].bitPattern }
        XCTAssertFalse(differing.isEmpty, "a reordered sum went unnoticed")
    }
}

private func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
