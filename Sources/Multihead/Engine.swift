import Foundation
import MultiheadKernels
import MultiheadRuntime
import MultiheadTopology

/// The machine an attention module runs on: its worker threads and cache sizes.
/// Thread-safe: one engine may serve many modules and many concurrent calls.
public final class Engine: @unchecked Sendable {
    /// Number of worker threads a forward call uses.
    public var threadCount: Int { executor.threadCount }
    let executor: Executor
    let cacheSizes: CacheSizes
    let workspaceLock = NSLock()
    var freeWorkspaces: [[FlashAttention.Workspace]] = []

    /// The machine as hwloc reports it (nil when hwloc could not read it).
    public let topology: Topology?

    /// - Parameter threads: worker threads; `nil` or 0 means one per core.
    /// - Throws: `MultiheadError.invalidArgument` for a negative count.
    public init(threads: Int? = nil) throws {
        let requested = threads ?? 0
        guard requested >= 0 else {
            throw MultiheadError.invalidArgument("threads must be >= 0 (0 = one per core), got \(requested)")
        }
        topology = Engine.machineTopology
        let cores = topology?.cores.count ?? ProcessInfo.processInfo.activeProcessorCount
        executor = Executor(threadCount: requested == 0 ? max(cores, 1) : requested)
        if let caches = topology?.caches {
            cacheSizes = CacheSizes(l1d: caches.l1dBytes, l2: caches.l2Bytes, l3: caches.l3Bytes)
        } else {
            cacheSizes = CacheSizes()
        }
    }

    /// Read once per process: loading a topology costs milliseconds.
    static let machineTopology: Topology? = try? Topology.load()

    /// The engine modules use when none is given: one thread per core.
    public static let shared: Engine = try! Engine()
}

extension Engine {
    /// Lends one kernel workspace per worker for the duration of `body`; workspaces are reused
    /// across calls, and concurrent calls get distinct sets.
    func withWorkspaces<R>(_ body: ([FlashAttention.Workspace]) throws -> R) rethrows -> R {
        let set: [FlashAttention.Workspace] = workspaceLock.withLock {
            freeWorkspaces.popLast()
        } ?? (0..<threadCount).map { _ in FlashAttention.Workspace(cacheSizes: cacheSizes) }
        defer { workspaceLock.withLock { freeWorkspaces.append(set) } }
        return try body(set)
    }
}
