import MultiheadRuntime

extension Engine {
    /// What one fork/join of an engine's executor costs, in microseconds.
    public struct ForkJoinTiming: Codable, Hashable, Sendable {
        /// `pinned`, `dispatch` or `plain`.
        public var executor: String
        /// Workers woken and waited for by each fork/join.
        public var threads: Int
        /// Fork/joins timed.
        public var iterations: Int
        /// Idle time before each fork/join (0: back to back, so pinned workers are spinning).
        public var idleMicroseconds: Int
        /// Whether every worker had to take part (else the caller may run every tile itself).
        public var everyWorker: Bool
        /// Median, mean, 99th and 99.9th percentile of one fork/join.
        public var median, mean, p99, p999: Double

        enum CodingKeys: String, CodingKey {
            case executor, threads, iterations, idleMicroseconds = "idle_us", everyWorker = "every_worker"
            case median = "median_us", mean = "mean_us", p99 = "p99_us", p999 = "p999_us"
        }
    }

    /// Times fork/joins of this engine's executor: each runs one empty tile per worker, so every
    /// worker is woken and waited for. A benchmark, not a test: figures vary with machine load.
    ///
    /// - Parameters:
    ///   - iterations: fork/joins to time (clamped to 1...10_000_000).
    ///   - idleMicroseconds: pause before each one; past the pool's 50 us spin, every fork/join
    ///     has to wake sleeping threads.
    ///   - everyWorker: each tile waits for all the others (a barrier), so every worker must be
    ///     woken; false times empty tiles, which the calling thread may run alone.
    /// - Returns: the timings.
    public func measureForkJoin(iterations: Int = 20_000, idleMicroseconds: Int = 0,
                                everyWorker: Bool = true) -> ForkJoinTiming {
        let idle = min(max(0, idleMicroseconds), 1_000_000)
        let result = ExecutorBenchmark.forkJoin(executor, name: executorKind.rawValue,
                                                iterations: min(max(1, iterations), 10_000_000),
                                                gapNanoseconds: UInt64(idle) * 1000, barrier: everyWorker)
        return ForkJoinTiming(executor: executorKind.rawValue, threads: result.threads, iterations: result.iterations,
                              idleMicroseconds: idle, everyWorker: everyWorker, median: result.median, mean: result.mean, p99: result.p99,
                              p999: result.p999)
    }
}
