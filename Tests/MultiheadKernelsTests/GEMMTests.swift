@testable import MultiheadKernels
import XCTest

/// The GEMM loops against the element-by-element contract (`oracleMultiply`), bit for bit, for
/// every variant, layout, edge and block boundary.
final class GEMMTests: XCTestCase {
    /// Caches so small that KC = 16 and MC, NC are a few tiles: sizes up to 70 cross every block
    /// boundary (depth blocks with partial sums, several MC and NC blocks).
    static let tinyCaches = CacheSizes(l1d: 2 << 10, l2: 4 << 10, l3: 8 << 10)

    func testBlockingTableFromCacheSizes() {
        let avx512 = MicroKernel(referenceWithMR: 16, nr: 16)
        let table = GEMMBlocking(cacheSizes: CacheSizes(), kernel: avx512)
        XCTAssertEqual(table, GEMMBlocking(mr: 16, nr: 16, kc: 256, mc: 256, nc: 2048))
        let avx2 = GEMMBlocking(cacheSizes: CacheSizes(), kernel: MicroKernel(referenceWithMR: 6, nr: 16))
        XCTAssertEqual(avx2, GEMMBlocking(mr: 6, nr: 16, kc: 368, mc: 174, nc: 2048))
        let small = GEMMBlocking(cacheSizes: Self.tinyCaches, kernel: avx512)
        XCTAssertEqual(small.kc, 16)
        XCTAssertEqual(small.mc % 16, 0)
        XCTAssertEqual(small.nc % 16, 0)
        // Degenerate caches still give one tile per block.
        let degenerate = GEMMBlocking(cacheSizes: CacheSizes(l1d: 1, l2: 1, l3: 1), kernel: avx512)
        XCTAssertEqual(degenerate, GEMMBlocking(mr: 16, nr: 16, kc: 16, mc: 16, nc: 16))
    }

    func testRandomShapesLayoutsAndEpilogues() {
        var random = TestRandom(seed: 2)
        for isa in supportedISAs {
            for caches in [Self.tinyCaches, CacheSizes()] {
                for trial in 0..<24 {
                    let m = random.int(1...70), n = random.int(1...70), k = random.int(1...70)
                    let layouts = (
                        a: TestLayout.allCases[trial % 4], b: TestLayout.allCases[(trial / 4) % 4],
                        c: TestLayout.allCases[(trial + 1) % 4])
                    checkBothOverloads(
                        isa: isa, caches: caches, m: m, n: n, k: k, layouts: layouts, withBias: trial % 2 == 0,
                        scale: trial % 3 == 0 ? 1 : 0.125, accumulate: trial % 5 < 2, random: &random)
                }
            }
        }
    }

    func testEdgeTilesAndDegenerateSizes() {
        var random = TestRandom(seed: 3)
        let sizes: [(Int, Int, Int)] = [
            (1, 1, 1), (1, 17, 1), (17, 1, 1), (5, 3, 1), (15, 15, 2), (16, 16, 1), (17, 17, 17), (6, 16, 1),
            (7, 33, 5), (64, 64, 64), (3, 5, 0), (0, 4, 4), (4, 0, 4),
        ]
        for isa in supportedISAs {
            for (m, n, k) in sizes {
                for accumulate in [false, true] {
                    checkBothOverloads(
                        isa: isa, caches: CacheSizes(), m: m, n: n, k: k,
                        layouts: (.rowMajor, .rowMajor, .rowMajor), withBias: true, scale: 0.5,
                        accumulate: accumulate, random: &random)
                }
            }
        }
    }

    /// Larger than the default KC (256) and, with tiny caches, than MC and NC many times over.
    func testBlockBoundariesAtRealSizes() {
        var random = TestRandom(seed: 4)
        for isa in supportedISAs where isa != .portable {
            checkBothOverloads(
                isa: isa, caches: CacheSizes(), m: 37, n: 45, k: 600, layouts: (.rowMajor, .rowMajor, .paddedRows),
                withBias: true, scale: 0.25, accumulate: true, random: &random)
            checkBothOverloads(
                isa: isa, caches: CacheSizes(l1d: 4 << 10, l2: 16 << 10, l3: 64 << 10), m: 130, n: 150, k: 90,
                layouts: (.columnMajor, .strided, .rowMajor), withBias: false, scale: 1, accumulate: false,
                random: &random)
        }
    }

    /// Attention's shapes: `S = Q K^T` (B = K^T, rowStride 1) and `O += P V`.
    func testAttentionShapedProducts() {
        var random = TestRandom(seed: 5)
        for isa in supportedISAs {
            for d in [1, 8, 24, 64, 80] {
                let workspace = GEMMWorkspace(cacheSizes: CacheSizes(), isa: isa)
                let q = TestMatrix(rows: 64, cols: d, layout: .rowMajor, random: &random)
                let keys = TestMatrix(rows: 48, cols: d, layout: .rowMajor, random: &random)
                var s = TestMatrix(rows: 64, cols: 48, layout: .rowMajor, random: &random)
                var expected = s
                let kT = TestMatrix(transposing: keys)
                oracleMultiply(q, kT, bias: nil, scale: 0.125, accumulate: false, into: &expected)
                q.withView { qv in
                    keys.withView { kv in
                        s.withMutableView { GEMM.multiply(qv, kv.transposed, scale: 0.125, into: $0, workspace: workspace) }
                    }
                }
                assertSameBits(s, expected, "\(isa) Q K^T d=\(d)")
                let v = TestMatrix(rows: 48, cols: d, layout: .rowMajor, random: &random)
                var o = TestMatrix(rows: 64, cols: d, layout: .rowMajor, random: &random)
                var expectedO = o
                oracleMultiply(s, v, bias: nil, scale: 1, accumulate: true, into: &expectedO)
                s.withView { sv in
                    v.withView { vv in o.withMutableView { GEMM.multiply(sv, vv, accumulate: true, into: $0, workspace: workspace) } }
                }
                assertSameBits(o, expectedO, "\(isa) P V d=\(d)")
            }
        }
    }

    /// Computing a column range (one head) gives the very bits of the same columns of the full
    /// product, whatever the alignment of the range to the NR panels; rows split likewise.
    func testColumnRangesAndRowSplitsAreBitIdenticalToTheFullProduct() {
        var random = TestRandom(seed: 6)
        for isa in supportedISAs {
            for caches in [Self.tinyCaches, CacheSizes()] {
                let m = 53, k = 75, n = 97
                let a = TestMatrix(rows: m, cols: k, layout: .rowMajor, random: &random)
                let b = TestMatrix(rows: k, cols: n, layout: .paddedRows, random: &random)
                let bias = random.floats(n)
                let packed = b.withView { PackedMatrix($0, cacheSizes: caches, isa: isa) }
                let workspace = GEMMWorkspace(cacheSizes: caches, isa: isa)
                var full = TestMatrix(rows: m, cols: n, layout: .rowMajor, random: &random)
                a.withView { av in
                    full.withMutableView { GEMM.multiply(av, packed, columns: 0..<n, bias: bias, scale: 0.3, into: $0, workspace: workspace) }
                }
                for columns in [0..<1, 3..<19, 16..<32, 5..<97, 40..<41, 90..<97, 0..<n] {
                    for rows in [0..<m, 7..<30] {
                        var part = TestMatrix(rows: rows.count, cols: columns.count, layout: .columnMajor, random: &random)
                        a.withView { av in
                            let aRows = MatrixView(
                                base: av.base + rows.lowerBound * av.rowStride, rows: rows.count, cols: k,
                                rowStride: av.rowStride, colStride: av.colStride)
                            part.withMutableView {
                                GEMM.multiply(aRows, packed, columns: columns, bias: bias, scale: 0.3, into: $0, workspace: workspace)
                            }
                        }
                        for i in 0..<rows.count {
                            for j in 0..<columns.count
                            where part[i, j].bitPattern != full[rows.lowerBound + i, columns.lowerBound + j].bitPattern {
                                XCTFail("\(isa) rows \(rows) columns \(columns): (\(i), \(j)) differs")
                                return
                            }
                        }
                    }
                }
            }
        }
    }

    func testEveryVariantGivesTheSameBits() {
        var random = TestRandom(seed: 7)
        let a = TestMatrix(rows: 45, cols: 300, layout: .rowMajor, random: &random)
        let b = TestMatrix(rows: 300, cols: 39, layout: .rowMajor, random: &random)
        var results: [TestMatrix] = []
        for isa in supportedISAs {
            var c = TestMatrix(rows: 45, cols: 39, layout: .rowMajor, random: &random)
            let workspace = GEMMWorkspace(cacheSizes: CacheSizes(), isa: isa)
            a.withView { av in b.withView { bv in c.withMutableView { GEMM.multiply(av, bv, into: $0, workspace: workspace) } } }
            results.append(c)
        }
        for other in results.dropFirst() { assertSameBits(other, results[0], "variants differ") }
    }

    /// Runs the unpacked and the packed overload on the same problem and checks both against the oracle.
    private func checkBothOverloads(
        isa: KernelISA, caches: CacheSizes, m: Int, n: Int, k: Int,
        layouts: (a: TestLayout, b: TestLayout, c: TestLayout), withBias: Bool, scale: Float, accumulate: Bool,
        random: inout TestRandom
    ) {
        let a = TestMatrix(rows: m, cols: k, layout: layouts.a, random: &random)
        let b = TestMatrix(rows: k, cols: n, layout: layouts.b, random: &random)
        let bias = withBias ? random.floats(n) : nil
        let initialC = TestMatrix(rows: m, cols: n, layout: layouts.c, random: &random)
        var expected = initialC
        oracleMultiply(a, b, bias: bias, scale: scale, accumulate: accumulate, into: &expected)
        let context = "\(isa) \(m)x\(n)x\(k) A \(layouts.a) B \(layouts.b) C \(layouts.c) bias \(withBias) scale \(scale) accumulate \(accumulate) caches \(caches.l1d)"
        let workspace = GEMMWorkspace(cacheSizes: caches, isa: isa)

        var unpacked = initialC
        a.withView { av in
            b.withView { bv in
                unpacked.withMutableView {
                    GEMM.multiply(av, bv, bias: bias, scale: scale, accumulate: accumulate, into: $0, workspace: workspace)
                }
            }
        }
        assertSameBits(unpacked, expected, "unpacked " + context)

        // The packed overload: the whole matrix, and a column range of a wider packed B.
        let packed = b.withView { PackedMatrix($0, cacheSizes: caches, isa: isa) }
        var packedResult = initialC
        a.withView { av in
            packedResult.withMutableView {
                GEMM.multiply(av, packed, columns: 0..<n, bias: bias, scale: scale, accumulate: accumulate, into: $0, workspace: workspace)
            }
        }
        assertSameBits(packedResult, expected, "packed " + context)
        XCTAssertEqual(initialC.storage.count, packedResult.storage.count)
        // Padding between C's elements is NaN and must stay NaN (nothing written out of bounds).
        for index in initialC.storage.indices where initialC.storage[index].isNaN {
            if !packedResult.storage[index].isNaN || !unpacked.storage[index].isNaN {
                XCTFail("wrote outside C: " + context)
                return
            }
        }
    }
}

extension TestMatrix {
    /// A copy of `matrix` transposed into row-major storage.
    init(transposing matrix: TestMatrix) {
        var random = TestRandom(seed: 0)
        self.init(rows: matrix.cols, cols: matrix.rows, layout: .rowMajor, random: &random)
        for i in 0..<rows { for j in 0..<cols { self[i, j] = matrix[j, i] } }
    }
}
