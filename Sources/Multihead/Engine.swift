import Foundation
import MultiheadKernels
import MultiheadRuntime
import MultiheadTopology

/// The machine an attention module runs on: its topology, one worker group per NUMA node, and
/// cache sizes. Thread-safe: one engine may serve many modules and many concurrent calls.
///
/// Results never depend on the engine: every output element is computed by one tile in a fixed
/// order, whichever node, thread or executor runs it, so any two engines give the same bits.
public final class Engine: @unchecked Sendable {
    /// Number of worker threads a forward call uses.
    public var threadCount: Int { executor.threadCount }
    /// The policy in force (a lenient default that had to fall back says `.none`).
    public let policy: Policy
    /// The executor kind in use.
    public let executorKind: ExecutorKind
    /// Whether modules keep a copy of their packed weights on every node.
    public let mirrorsWeights: Bool
    /// Scratch bytes an attention call may use before running its heads in groups (`Options.scratchLimit`).
    public let scratchLimit: Int
    /// The default `scratchLimit`: 32 MiB. Self-attention with E=1024, H=16 and N=1 then runs
    /// L=2048 in groups of 10 heads, L=16384 one head at a time (24 MiB); BERT-base (N=8, L=128,
    /// E=768: 18 MiB) runs whole. Grouping costs no speed here (long-2k measured 1-3% faster).
    public static let defaultScratchLimit = 32 << 20
    /// Why the placement is what it is, when that is not obvious (for `describe()`).
    public let notes: [String]
    /// The topology threads are placed on (this machine unless `Options.topology` was given);
    /// nil when hwloc could not read it.
    public let topology: Topology?

    let executor: Executor
    /// Kernel blocking; always from this machine's caches, never from a synthetic topology,
    /// so that the blocking (and so the bits) are the same for every engine in the process.
    let cacheSizes: CacheSizes
    let workspaceLock = NSLock()
    var freeWorkspaces: [[FlashAttention.Workspace]] = []

    /// Creates an engine.
    ///
    /// - Parameter options: threads, policy, executor, weight mirroring, topology.
    /// - Throws: `MultiheadError.invalidArgument` for a negative thread count, an empty or foreign
    ///   cpuset, more threads than a binding policy's PUs, or workers that cannot bind;
    ///   `.outOfMemory` when a worker thread cannot start.
    public init(options: Options) throws {
        let topology = options.topology ?? Engine.machineTopology
        if let limit = options.scratchLimit, limit <= 0 {
            throw MultiheadError.invalidArgument("engine: scratch limit must be positive, got \(limit)")
        }
        scratchLimit = options.scratchLimit ?? Engine.defaultScratchLimit
        let placement = try Engine.placement(topology: topology, policy: options.policy, threads: options.threads)
        self.topology = topology
        executorKind = options.executor
        notes = placement.notes
        switch options.executor {
        case .plain:
            executor = Executor(threadCount: placement.layout.threadCount)
            policy = .none
        case .pinned, .dispatch:
            policy = placement.policy
            do {
                // More threads than PUs: spinning would steal time from threads with work.
                let spin: UInt64 = placement.layout.threadCount > Engine.machinePUs ? 0 : Engine.spinNanoseconds
                executor = try Executor(layout: placement.layout, backend: options.executor == .pinned ? .pinned : .dispatch,
                                        spinNanoseconds: spin)
            } catch let error as ExecutorError {
                if case .threadStartFailed = error { throw MultiheadError.outOfMemory("engine: \(error)") }
                throw MultiheadError.invalidArgument("engine: \(error)")
            }
        }
        let groups = executor.layout.groups.count
        mirrorsWeights = options.mirrorWeights ?? (groups > 1)
        cacheSizes = Engine.machineCacheSizes
    }

    /// Creates an engine with the default policy and executor.
    ///
    /// - Parameter threads: worker threads; `nil` or 0 means one per core.
    /// - Throws: `MultiheadError.invalidArgument` for a negative count.
    public convenience init(threads: Int? = nil) throws {
        try self.init(options: Options(threads: threads ?? 0))
    }

    /// Read once per process: loading a topology costs milliseconds.
    static let machineTopology: Topology? = try? Topology.load()

    /// How long idle pinned workers spin before sleeping: `$MULTIHEAD_SPIN_US` microseconds
    /// (0...100000; like `GOMP_SPINCOUNT`, for machines shared with other work), else 50 us.
    static let spinNanoseconds: UInt64 = {
        guard let text = ProcessInfo.processInfo.environment["MULTIHEAD_SPIN_US"], let us = UInt64(text), us <= 100_000 else {
            return 50_000
        }
        return us * 1000
    }()

    /// PUs of this machine (what hwloc allows this process), at least 1.
    static let machinePUs: Int = max(1, machineTopology?.processingUnits ?? ProcessInfo.processInfo.activeProcessorCount)

    static let machineCacheSizes: CacheSizes = {
        guard let caches = machineTopology?.caches else { return CacheSizes() }
        return CacheSizes(l1d: caches.l1dBytes, l2: caches.l2Bytes, l3: caches.l3Bytes)
    }()

    /// The engine modules use when none is given: one thread per core, default policy. Falls
    /// back to the plain executor should workers fail to start, rather than failing every module.
    public static let shared: Engine = (try? Engine()) ?? Engine(plainThreads: machineTopology?.cores.count ?? 1)

    /// The plain executor, unbound: what `shared` falls back to. Cannot fail.
    private init(plainThreads: Int) {
        topology = Engine.machineTopology
        executor = Executor(threadCount: plainThreads)
        executorKind = .plain
        policy = .none
        mirrorsWeights = false
        scratchLimit = Engine.defaultScratchLimit
        notes = ["the default engine could not start its workers: plain executor"]
        cacheSizes = Engine.machineCacheSizes
    }
}
