import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Measures what one fork/join costs an executor: a `run` of one tile per worker. With
/// `barrier`, each tile waits until every worker has arrived, so every worker must really be
/// woken; without, the tiles are empty and an executor whose caller may take every tile itself
/// need not wait for anyone (what a phase with little work costs).
public enum ExecutorBenchmark {
    /// Fork/join timings of one executor, in microseconds.
    public struct ForkJoin: Codable, Hashable, Sendable {
        /// What was measured, e.g. `"pinned"`.
        public var name: String
        /// Workers taking part in each fork/join.
        public var threads: Int
        /// Fork/joins timed.
        public var iterations: Int
        /// Whether every worker had to take part (see `forkJoin`).
        public var barrier: Bool
        /// Median of one fork/join.
        public var median: Double
        /// Mean of one fork/join (what a phase pays on average, tail included).
        public var mean: Double
        /// 99th and 99.9th percentiles: the tail.
        public var p99: Double
        public var p999: Double

        enum CodingKeys: String, CodingKey {
            case name, threads, iterations, barrier, median = "median_us", mean = "mean_us", p99 = "p99_us", p999 = "p999_us"
        }
    }

    /// Times `iterations` fork/joins of `executor` (after a tenth as many for warm-up).
    ///
    /// - Parameters:
    ///   - executor: the executor; more than one worker makes the figure meaningful.
    ///   - name: label of the result.
    ///   - iterations: fork/joins to time, at least 1.
    ///   - gapNanoseconds: idle time between fork/joins (0: back to back, the workers stay hot;
    ///     longer than the pool's spin: every fork/join wakes sleeping threads).
    ///   - barrier: make every worker take part.
    /// - Returns: the timings.
    public static func forkJoin(_ executor: Executor, name: String, iterations: Int = 20_000,
                                gapNanoseconds: UInt64 = 0, barrier: Bool = true) -> ForkJoin {
        let iterations = max(1, iterations)
        let tiles = executor.threadCount
        var samples = [Double](repeating: 0, count: iterations)
        for index in -(iterations / 10)..<iterations {
            if gapNanoseconds > 0 { usleep(UInt32(clamping: gapNanoseconds / 1000)) }
            let start = DispatchTime.now().uptimeNanoseconds
            let arrived = Atomic<Int>(0)
            executor.run(tiles: tiles) { _, _ in
                guard barrier else { return }
                arrived.wrappingAdd(1, ordering: .relaxed)
                // A barrier; the 10 ms bound only matters should a worker never come.
                _ = Spin.wait(nanoseconds: 10_000_000) { arrived.load(ordering: .relaxed) >= tiles }
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            if index >= 0 { samples[index] = Double(elapsed) / 1000 }
        }
        let mean = samples.reduce(0, +) / Double(iterations)
        samples.sort()
        let at = { (q: Double) in samples[min(iterations - 1, Int(q * Double(iterations)))] }
        return ForkJoin(name: name, threads: tiles, iterations: iterations, barrier: barrier, median: at(0.5), mean: mean,
                        p99: at(0.99), p999: at(0.999))
    }
}
