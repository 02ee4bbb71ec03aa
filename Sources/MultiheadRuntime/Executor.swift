import Dispatch
import Foundation
import Synchronization

/// How an executor's workers are provided.
public enum ExecutorBackend: String, CaseIterable, Codable, Sendable {
    /// Persistent threads, bound once, spinning briefly then sleeping between jobs
    /// (`PinnedPool`). The default: its fork/join costs a fraction of Dispatch's.
    case pinned
    /// `DispatchQueue.concurrentPerform` on Dispatch's shared threads, bound per call.
    case dispatch
}

/// Runs a fixed number of independent tiles on a group of worker threads per NUMA node.
///
/// Each node's group owns a contiguous share of every phase's batches (`WorkerLayout`), and
/// hands its tiles out to its own workers by an atomic counter, so uneven tiles balance
/// themselves inside a node. Callers must make every output element the product of exactly one
/// tile: then results do not depend on the thread count, the node count or which worker ran
/// which tile.
public final class Executor: @unchecked Sendable {
    /// Number of workers (the calling thread is one of them when `layout.callerParticipates`).
    public let threadCount: Int
    /// The workers per node and their binding.
    public let layout: WorkerLayout
    /// Where the workers come from; nil for the plain executor of `init(threadCount:)`.
    public let backend: ExecutorBackend?
    private let pool: PinnedPool?

    /// The plain executor: one group of `threadCount` unbound workers on Dispatch, no NUMA
    /// machinery (the baseline the NUMA executors are measured against).
    ///
    /// - Parameter threadCount: workers to use, at least 1.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        layout = .unbound(threads: self.threadCount)
        backend = nil
        pool = nil
    }

    /// An executor with one worker group per node of `layout`.
    ///
    /// - Parameters:
    ///   - layout: the groups, their sizes and bindings.
    ///   - backend: persistent pinned threads, or Dispatch.
    ///   - spinNanoseconds: for `.pinned`, how long idle threads spin before they sleep.
    /// - Throws: `ExecutorError` when a worker thread cannot start or bind.
    public init(layout: WorkerLayout, backend: ExecutorBackend,
                spinNanoseconds: UInt64 = 50_000) throws {
        self.layout = layout
        self.backend = backend
        threadCount = layout.threadCount
        switch backend {
        case .pinned:
            let poolThreads = layout.threadCount - (layout.callerParticipates ? 1 : 0)
            pool = poolThreads > 0 ? try PinnedPool(layout: layout, spinNanoseconds: spinNanoseconds) : nil
        case .dispatch:
            try DispatchGroups.checkBinding(layout)
            pool = nil
        }
    }

    /// Calls `body(tile, worker)` once for every `tile` in `0..<tileCount`, splitting the tiles
    /// between nodes in contiguous ranges (`TileSpace(tiles:)`).
    ///
    /// `worker` is in `0..<threadCount` and no two concurrent calls share it, so it can index
    /// per-worker scratch; `layout.group(ofWorker:)` tells its node. Returns when every tile has
    /// finished.
    /// - Parameter parallel: false runs every tile on the calling thread, for work too small to
    ///   pay for waking workers (the tiles, and so the results, are the same).
    public func run(tiles tileCount: Int, parallel: Bool = true, _ body: (_ tile: Int, _ worker: Int) -> Void) {
        run(TileSpace(tiles: tileCount), parallel: parallel, body)
    }

    /// Calls `body(tile, worker)` once for every tile of `space`, each on a worker of the node
    /// that owns the tile's batch (see `WorkerLayout.tiles(of:in:segment:)`).
    ///
    /// - Parameters:
    ///   - space: the phase's tiles and their batch structure.
    ///   - parallel: false runs every tile on the calling thread, as worker 0.
    ///   - body: the tile's work; `worker` as in `run(tiles:parallel:_:)`.
    public func run(_ space: TileSpace, parallel: Bool = true, _ body: (_ tile: Int, _ worker: Int) -> Void) {
        let tileCount = space.count
        guard tileCount > 0 else { return }
        guard backend != nil else {
            runPlain(tileCount, parallel: parallel, body)
            return
        }
        if !parallel || (threadCount == 1 && layout.callerParticipates) {
            for tile in 0..<tileCount { body(tile, 0) }
            return
        }
        if let pool {
            if pool.tryRun(space, body) { return }
            if pool.isForkedCopy {
                // A fork() child: Dispatch may not survive a fork either, so run on this thread.
                for tile in 0..<tileCount { body(tile, 0) }
                return
            }
        }
        // Dispatch, or a pool already running a job (a concurrent caller, or a nested call).
        DispatchGroups.run(layout, space, body)
    }

    /// Calls `body(worker)` once for every worker, on a thread of the worker's node (its own
    /// thread for the pinned pool), so that memory it first touches lands on that node.
    ///
    /// - Parameter body: called concurrently, once per worker id in `0..<threadCount`.
    public func forEachWorker(_ body: (_ worker: Int) -> Void) {
        if let pool, pool.tryForEachWorker(body) { return }
        if backend == nil || (threadCount == 1 && layout.callerParticipates) || pool?.isForkedCopy == true {
            for worker in 0..<threadCount { body(worker) }
            return
        }
        DispatchGroups.forEachWorker(layout, body)
    }

    /// The executor before NUMA groups: one Dispatch `concurrentPerform`, one atomic counter.
    private func runPlain(_ tileCount: Int, parallel: Bool, _ body: (_ tile: Int, _ worker: Int) -> Void) {
        let workers = parallel ? min(threadCount, tileCount) : 1
        if workers == 1 {
            for tile in 0..<tileCount { body(tile, 0) }
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let tile = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if tile >= tileCount { break }
                    body(tile, worker)
                }
            }
        }
    }
}
