import CMultiheadKernels
import Dispatch
@testable import MultiheadKernels
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Run-time variant choice, and bit-identical results however the work is split across threads.
final class KernelDispatchTests: XCTestCase {
    func testEnvironmentVariableLowersTheSelection() {
        let best = mh_kernels_best_isa()
        defer { unsetenv("MULTIHEAD_ISA") }
        setenv("MULTIHEAD_ISA", "portable", 1)
        XCTAssertEqual(mh_kernels_selected_isa(), MH_ISA_PORTABLE)
        setenv("MULTIHEAD_ISA", "avx2", 1)
        XCTAssertEqual(mh_kernels_selected_isa().rawValue, Swift.min(MH_ISA_AVX2.rawValue, best.rawValue))
        setenv("MULTIHEAD_ISA", "avx512", 1)
        XCTAssertEqual(mh_kernels_selected_isa(), best, "a request above the CPU falls back to the best variant")
        setenv("MULTIHEAD_ISA", "sse9", 1)
        XCTAssertEqual(mh_kernels_selected_isa(), best, "unknown values are ignored")
        unsetenv("MULTIHEAD_ISA")
        XCTAssertEqual(mh_kernels_selected_isa(), best)
        XCTAssertEqual(Int(mh_kernels_isa_level()), Int(best.rawValue))
        XCTAssertTrue(KernelISA.portable.isSupported)
        XCTAssertEqual(KernelISA.best.rawValue, Int(best.rawValue))
    }

    func testUnsupportedRequestsFallBack() {
        for isa in KernelISA.allCases where !isa.isSupported {
            XCTAssertEqual(MicroKernel(isa: isa).isa, KernelISA.best)
            XCTAssertEqual(VectorMath.Functions(isa: isa).isa, KernelISA.best)
        }
    }

    /// Four threads, each with its own workspace, computing row blocks and column ranges of one
    /// projection-like product give the bits of one single-threaded call.
    func testThreadSplitsAreBitIdentical() {
        var random = TestRandom(seed: 12)
        let m = 150, k = 300, n = 90
        let a = TestMatrix(rows: m, cols: k, layout: .rowMajor, random: &random)
        let b = TestMatrix(rows: k, cols: n, layout: .rowMajor, random: &random)
        let bias = random.floats(n)
        let packed = b.withView { PackedMatrix($0) }
        var whole = TestMatrix(rows: m, cols: n, layout: .rowMajor, random: &random)
        a.withView { av in
            whole.withMutableView {
                GEMM.multiply(av, packed, columns: 0..<n, bias: bias, scale: 0.7, into: $0, workspace: GEMMWorkspace())
            }
        }
        var split = TestMatrix(rows: m, cols: n, layout: .rowMajor, random: &random)
        let rowBlocks = [0..<37, 37..<38, 38..<101, 101..<150]
        let columnRanges = [0..<21, 21..<64, 64..<90]
        a.withView { av in
            split.withMutableView { cv in
                DispatchQueue.concurrentPerform(iterations: rowBlocks.count) { t in
                    let workspace = GEMMWorkspace()
                    let rows = rowBlocks[t]
                    let aRows = MatrixView(
                        base: av.base + rows.lowerBound * av.rowStride, rows: rows.count, cols: k, rowStride: av.rowStride)
                    for columns in columnRanges {
                        let c = MutableMatrixView(
                            base: cv.base + rows.lowerBound * cv.rowStride + columns.lowerBound, rows: rows.count,
                            cols: columns.count, rowStride: cv.rowStride)
                        GEMM.multiply(aRows, packed, columns: columns, bias: bias, scale: 0.7, into: c, workspace: workspace)
                    }
                }
            }
        }
        assertSameBits(split, whole, "split across threads")
    }

    func testBenchmarkRuns() {
        // A figure, not an assertion on time: only that it measures something.
        XCTAssertGreaterThan(GEMMBenchmark.benchmark(m: 8, n: 8, k: 8, iterations: 1), 0)
        XCTAssertGreaterThan(GEMMBenchmark.benchmark(m: 8, n: 8, k: 8, iterations: 1, packedB: false), 0)
    }
}
