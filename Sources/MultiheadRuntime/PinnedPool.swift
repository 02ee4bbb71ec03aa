import Synchronization
import MultiheadTopology
#if canImport(Glibc)
import Glibc
#endif

/// Persistent worker threads, each bound once to its group's PUs, woken per phase.
///
/// A fork/join here is a store per woken worker and a counter the caller polls: measured at
/// 0.35 us (median, 2 workers, `multihead-cli topology --fork-join`) while the workers spin
/// (`Spin.defaultNanoseconds` after each job), against 12-24 us for
/// `DispatchQueue.concurrentPerform` when every worker must take part. After the spin a worker
/// sleeps on its own `Parker`; only workers whose group has tiles in the next job are woken, and
/// a job whose tiles were all taken by others does not wait for a late sleeper (`PoolState`).
///
/// One job runs at a time. `tryRun` returns false instead of waiting when a job is already
/// running (a concurrent caller, or a tile that itself calls the executor) or when the process
/// is a `fork()` child (whose copy of the pool has no threads); the executor then runs the tiles
/// another way, with the same results.
final class PinnedPool: @unchecked Sendable {
    let layout: WorkerLayout
    private let state: PoolState
    private var threads: [pthread_t] = []
    /// `PinnedPool.forks` when the pool was made.
    private let forkGeneration: Int

    /// Starts one thread per worker (except worker 0 when the caller participates) and waits
    /// until each has bound itself.
    ///
    /// - Parameters:
    ///   - layout: the workers and their bindings.
    ///   - spinNanoseconds: how long an idle worker (or the waiting caller) spins before sleeping.
    /// - Throws: `ExecutorError` when a thread cannot start or cannot bind; no thread is left running.
    init(layout: WorkerLayout, spinNanoseconds: UInt64 = Spin.defaultNanoseconds) throws {
        _ = Self.forkHandlerInstalled
        self.layout = layout
        forkGeneration = Self.forks.load(ordering: .acquiring)
        state = PoolState(layout: layout, spinNanoseconds: spinNanoseconds)
        let first = layout.callerParticipates ? 1 : 0
        for worker in first..<layout.threadCount {
            let context = Unmanaged.passRetained(WorkerContext(state: state, worker: worker)).toOpaque()
            var thread = pthread_t()
            let code = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.state.workerMain(worker: context.worker)
                return nil
            }, context)
            guard code == 0 else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                stop()
                throw ExecutorError.threadStartFailed(worker: worker, errno: code)
            }
            threads.append(thread)
        }
        if let failure = state.waitForStartup(threads: threads.count) {
            stop()
            throw failure
        }
    }

    deinit { stop() }

    /// Stops and joins every started thread (not in a `fork()` child, which has none).
    private func stop() {
        guard Self.forks.load(ordering: .acquiring) == forkGeneration else { return }
        state.shutdown.store(true, ordering: .sequentiallyConsistent)
        state.postAll()
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    /// Runs every tile of `space` on its group's workers.
    ///
    /// - Returns: false, having run nothing, when the pool is busy or the process was forked.
    func tryRun(_ space: TileSpace, _ body: (_ tile: Int, _ worker: Int) -> Void) -> Bool {
        guard acquire() else { return false }
        defer { state.busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            state.tileBody = body
            state.space = space
            state.execute(units: space.count) { group in
                min(layout.groups[group].threads, layout.tileCount(of: group, in: space))
            }
            state.tileBody = nil
        }
        return true
    }

    /// Calls `body(worker)` once for every worker, on that worker's thread.
    ///
    /// - Returns: false, having run nothing, when the pool is busy or the process was forked.
    func tryForEachWorker(_ body: (_ worker: Int) -> Void) -> Bool {
        guard acquire() else { return false }
        defer { state.busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            state.workerBody = body
            state.execute(units: layout.threadCount) { group in layout.groups[group].threads }
            state.workerBody = nil
        }
        return true
    }

    /// Whether this is a `fork()` child's copy of the pool, whose threads do not exist.
    var isForkedCopy: Bool { Self.forks.load(ordering: .relaxed) != forkGeneration }

    private func acquire() -> Bool {
        guard !isForkedCopy else { return false }
        return state.busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    /// Counts `fork()`s, so that a child process never waits for threads it does not have.
    static let forks = Atomic<Int>(0)

    private static let forkHandlerInstalled: Bool = {
        pthread_atfork(nil, nil, { _ = PinnedPool.forks.wrappingAdd(1, ordering: .sequentiallyConsistent) })
        return true
    }()
}

/// What a pool thread is started with.
private final class WorkerContext {
    let state: PoolState
    let worker: Int
    init(state: PoolState, worker: Int) { self.state = state; self.worker = worker }
}

/// Why an executor could not start.
public enum ExecutorError: Error, Equatable, CustomStringConvertible, Sendable {
    /// `pthread_create` failed for a worker.
    case threadStartFailed(worker: Int, errno: Int32)
    /// A worker could not bind itself to its group's PUs.
    case bindingFailed(worker: Int, TopologyError)

    public var description: String {
        switch self {
        case .threadStartFailed(let worker, let code):
            return "could not start worker thread \(worker): \(String(cString: strerror(code))) (errno \(code))"
        case .bindingFailed(let worker, let error):
            return "worker \(worker): \(error)"
        }
    }
}
