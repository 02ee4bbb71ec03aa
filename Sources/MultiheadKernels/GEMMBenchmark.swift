/// A single-thread GEMM throughput measurement, for the command-line tool's `bench`.
///
/// It prints nothing and asserts nothing: shared machines are noisy, so figures are reported,
/// never tested.
public enum GEMMBenchmark {
    /// Single-thread GFLOP/s (2·m·n·k flops per product) of `C[m x n] = A[m x k] * B[k x n]`,
    /// row-major operands.
    ///
    /// The median over `iterations` timed runs after one warm-up run; each run repeats the
    /// product for at least about 5 ms, so small shapes (attention's 64 x 64 x 64) are measurable.
    /// - Parameters:
    ///   - packedB: `true` multiplies by a `PackedMatrix` (the projections' path, packing not
    ///     timed); `false` by an unpacked B (attention's in-cache path, its packing timed).
    ///   - isa: the micro-kernel variant (`KernelISA.selected` by default).
    ///   - cacheSizes: the blocking table's input.
    /// - Returns: GFLOP/s.
    public static func benchmark(
        m: Int, n: Int, k: Int, iterations: Int, packedB: Bool = true,
        isa: KernelISA = .selected, cacheSizes: CacheSizes = CacheSizes()
    ) -> Double {
        let kernel = MicroKernel(isa: isa)
        return benchmark(
            m: m, n: n, k: k, iterations: iterations, packedB: packedB, kernel: kernel,
            blocking: GEMMBlocking(cacheSizes: cacheSizes, kernel: kernel), cacheSizes: cacheSizes)
    }

    /// The measurement with an explicit blocking table (tuning).
    static func benchmark(
        m: Int, n: Int, k: Int, iterations: Int, packedB: Bool, kernel: MicroKernel, blocking: GEMMBlocking,
        cacheSizes: CacheSizes
    ) -> Double {
        precondition(m > 0 && n > 0 && k > 0 && iterations > 0)
        // 64-byte-aligned operands: Swift arrays are only 16-byte aligned, which splits every
        // zmm access across two cache lines and moves small products by ~10% run to run.
        var a = GEMMScratchBuffer(capacity: m * k), b = GEMMScratchBuffer(capacity: k * n)
        var c = GEMMScratchBuffer(capacity: m * n)
        defer {
            a.deallocate()
            b.deallocate()
            c.deallocate()
        }
        var state: UInt32 = 0x9E37_79B9
        for (buffer, count) in [(a.reserve(0), m * k), (b.reserve(0), k * n), (c.reserve(0), m * n)] {
            for i in 0..<count {
                state = state &* 1_664_525 &+ 1_013_904_223
                buffer[i] = Float(Int32(bitPattern: state) >> 8) / Float(1 << 23)
            }
        }
        let workspace = GEMMWorkspace(cacheSizes: cacheSizes, kernel: kernel, blocking: blocking)
        let aView = MatrixView(base: a.base, rows: m, cols: k, rowStride: k)
        let bView = MatrixView(base: b.base, rows: k, cols: n, rowStride: n)
        let cView = MutableMatrixView(base: c.base, rows: m, cols: n, rowStride: n)
        let packed = packedB ? PackedMatrix(bView, kernel: kernel, blocking: blocking) : nil
        let product = {
            if let packed {
                GEMM.multiply(aView, packed, columns: 0..<n, into: cView, workspace: workspace)
            } else {
                GEMM.multiply(aView, bView, into: cView, workspace: workspace)
            }
        }
        return medianGFLOPs(flopsPerRun: 2 * Double(m) * Double(n) * Double(k), iterations: iterations, product)
    }

    static func medianGFLOPs(flopsPerRun: Double, iterations: Int, _ product: () -> Void) -> Double {
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        // Warm-up, which also sizes the repeat count.
        var repeats = 1
        while true {
            let elapsed = seconds(clock.measure { for _ in 0..<repeats { product() } })
            if elapsed >= 0.005 { break }
            repeats *= elapsed < 0.0005 ? 10 : 2
        }
        var rates: [Double] = []
        for _ in 0..<iterations {
            let elapsed = seconds(clock.measure { for _ in 0..<repeats { product() } })
            rates.append(flopsPerRun * Double(repeats) / elapsed / 1e9)
        }
        rates.sort()
        return rates[rates.count / 2]
    }
}

import CMultiheadKernels
import Dispatch

extension GEMMBenchmark {
    /// The machine's measured FMA peak in GFLOP/s with `threads` threads running independent FMA
    /// chains at once (best of `tries`): the denominator of every "% of peak".
    public static func fmaPeak(threads: Int, tries: Int = 5) -> Double {
        let iterations: Int64 = 20_000_000
        var best = 0.0
        for _ in 0..<tries {
            let clock = ContinuousClock()
            var flops = 0.0
            let elapsed = clock.measure {
                let perThread = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
                defer { perThread.deallocate() }
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    var sink: Float = 0
                    perThread[t] = mh_fma_loop(iterations, &sink)
                }
                flops = perThread.reduce(0, +)
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = Swift.max(best, flops / seconds / 1e9)
        }
        return best
    }

    /// GFLOP/s of `C[m x n] = A * B` (packed B) split into `threads` row bands run at once, each
    /// with its own workspace; the median of `iterations` runs.
    public static func parallelBenchmark(m: Int, n: Int, k: Int, threads: Int, iterations: Int) -> Double {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k), b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(m * k) { a[i] = Float(i % 17) / 17 }
        for i in 0..<(k * n) { b[i] = Float(i % 13) / 13 }
        let packed = PackedMatrix(MatrixView(base: b, rows: k, cols: n, rowStride: n))
        let workspaces = (0..<threads).map { _ in GEMMWorkspace() }
        let band = (m + threads - 1) / threads
        let product = {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let rows = t * band ..< Swift.min(m, (t + 1) * band)
                guard !rows.isEmpty else { return }
                GEMM.multiply(MatrixView(base: a + rows.lowerBound * k, rows: rows.count, cols: k, rowStride: k), packed,
                              columns: 0..<n, into: MutableMatrixView(base: c + rows.lowerBound * n, rows: rows.count, cols: n, rowStride: n),
                              workspace: workspaces[t])
            }
        }
        return medianGFLOPs(flopsPerRun: 2 * Double(m) * Double(n) * Double(k), iterations: iterations, product)
    }
}
