import Foundation
import MultiheadKernels
import MultiheadRuntime

extension Engine {
    /// Lends one kernel workspace per worker for the duration of `body`; workspaces are reused
    /// across calls, and concurrent calls get distinct sets.
    ///
    /// A new set is built by the workers themselves (`Executor.forEachWorker`): each workspace
    /// comes from its worker's own malloc arena, and its pages are first touched, so placed, by
    /// the worker that uses it, on that worker's node. (Allocating them with
    /// `hwloc_alloc_membind` would need an allocator parameter on `FlashAttention.Workspace`.)
    func withWorkspaces<R>(_ body: ([FlashAttention.Workspace]) throws -> R) rethrows -> R {
        let set = workspaceLock.withLock { freeWorkspaces.popLast() } ?? makeWorkspaces()
        defer { workspaceLock.withLock { freeWorkspaces.append(set) } }
        return try body(set)
    }

    private func makeWorkspaces() -> [FlashAttention.Workspace] {
        let made = UnsafeMutableBufferPointer<FlashAttention.Workspace?>.allocate(capacity: threadCount)
        made.initialize(repeating: nil)
        defer { _ = made.deinitialize(); made.deallocate() }
        let cacheSizes = self.cacheSizes
        executor.forEachWorker { worker in
            made[worker] = FlashAttention.Workspace(cacheSizes: cacheSizes)
        }
        return made.map { $0 ?? FlashAttention.Workspace(cacheSizes: cacheSizes) }
    }

    /// Worker group (NUMA node slot) of each worker, for `NodeReplicas`.
    var groupOfWorker: [Int] { (0..<threadCount).map { executor.layout.group(ofWorker: $0) } }

    /// Whether `bytes` of read-only data should be copied to every node: mirroring is on and the
    /// copies take at most an eighth of the smallest node's memory (unknown sizes allow it).
    func shouldMirror(bytes: Int) -> Bool {
        let groups = executor.layout.groups
        guard mirrorsWeights, groups.count > 1 else { return false }
        let memories = groups.compactMap { group in
            group.node.flatMap { index in topology?.numaNodes.first { $0.index == index }?.memoryBytes }
        }.filter { $0 > 0 }
        guard let smallest = memories.min() else { return true }
        return bytes.multipliedReportingOverflow(by: groups.count).partialValue <= smallest / 8
    }

    /// Builds one copy of read-only data per worker group, each on a worker of that group, so
    /// that its pages are placed on that node (first touch); or one shared copy when
    /// `shouldMirror(bytes:)` says no.
    ///
    /// - Parameters:
    ///   - bytes: size of one copy, for the memory check.
    ///   - make: builds a copy; called once per group, concurrently.
    /// - Returns: the copies, looked up by worker.
    func replicate<Value>(bytes: Int, _ make: () -> Value) -> NodeReplicas<Value> {
        let layout = executor.layout
        guard shouldMirror(bytes: bytes) else {
            return NodeReplicas(copies: [make()], groupOfWorker: [Int](repeating: 0, count: threadCount))
        }
        let made = UnsafeMutableBufferPointer<Value?>.allocate(capacity: layout.groups.count)
        made.initialize(repeating: nil)
        defer { _ = made.deinitialize(); made.deallocate() }
        executor.forEachWorker { worker in
            let group = layout.group(ofWorker: worker)
            if worker == layout.firstWorker(of: group) { made[group] = make() }
        }
        return NodeReplicas(copies: made.map { $0 ?? make() }, groupOfWorker: groupOfWorker)
    }
}

/// Read-only data that keeps its own copies on the other NUMA nodes (the packed weights).
///
/// The object itself is the copy of the first worker group; `mirrors` holds the others (`nil`
/// at index 0, so that the object does not own itself).
protocol NodeMirrored: AnyObject {
    var mirrors: NodeReplicas<Self?>? { get set }
}

extension NodeMirrored {
    /// Number of copies: one per worker group when mirrored, else 1.
    var copyCount: Int { mirrors?.copies.count ?? 1 }

    /// Copy `index`, in `0..<copyCount`.
    func copy(_ index: Int) -> Self { index == 0 ? self : (mirrors?.copies[index] ?? nil) ?? self }

    /// Index of the copy on `worker`'s node.
    func copyIndex(worker: Int) -> Int { mirrors?.group(ofWorker: worker) ?? 0 }

    /// The copy on `worker`'s node.
    func local(worker: Int) -> Self { copy(copyIndex(worker: worker)) }
}

extension Engine {
    /// Builds `make()` once per worker group on that group's node (`replicate`), and returns
    /// the first group's copy holding the others as its `mirrors`; or one plain copy.
    func mirrored<Value: NodeMirrored>(bytes: Int, _ make: () -> Value) -> Value {
        let replicas = replicate(bytes: bytes, make)
        let primary = replicas.first
        guard replicas.copies.count > 1 else { return primary }
        primary.mirrors = NodeReplicas(copies: [nil] + replicas.copies.dropFirst().map { Optional($0) },
                                       groupOfWorker: groupOfWorker)
        return primary
    }
}

/// One copy of read-only data per NUMA node, looked up by the worker reading it.
final class NodeReplicas<Value>: @unchecked Sendable {
    /// One copy per worker group (a single shared copy when not mirrored).
    let copies: [Value]
    private let groupOfWorker: [Int]

    init(copies: [Value], groupOfWorker: [Int]) {
        self.copies = copies
        self.groupOfWorker = groupOfWorker
    }

    /// The copy on `worker`'s node.
    subscript(worker worker: Int) -> Value {
        copies[group(ofWorker: worker)]
    }

    /// Index into `copies` of `worker`'s node.
    func group(ofWorker worker: Int) -> Int {
        copies.count == 1 || worker >= groupOfWorker.count ? 0 : groupOfWorker[worker]
    }

    /// The copy of the first node (for work outside a tile).
    var first: Value { copies[0] }
}
