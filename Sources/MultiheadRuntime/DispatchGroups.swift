import Dispatch
import Foundation
import Synchronization
import MultiheadTopology

/// Node groups on Dispatch's shared threads: one `concurrentPerform` whose iterations are the
/// participating workers of every group, each taking tiles from its own group's counter.
///
/// Dispatch's threads belong to the whole process, so a bound group binds the thread that runs
/// one of its iterations for that iteration only and restores its previous binding afterwards:
/// three system calls per iteration, which is why this is not the default executor.
enum DispatchGroups {
    /// Runs every tile of `space` on its group's workers.
    static func run(_ layout: WorkerLayout, _ space: TileSpace, _ body: (_ tile: Int, _ worker: Int) -> Void) {
        let participants = layout.groups.indices.map {
            min(layout.groups[$0].threads, layout.tileCount(of: $0, in: space))
        }
        let counters = layout.groups.map { _ in TileCounter() }
        forEachParticipant(layout, participants) { group, worker in
            var cursor = GroupCursor(layout: layout, space: space, group: group)
            while true {
                let position = counters[group].next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard let tile = cursor.tile(at: position) else { return }
                body(tile, worker)
            }
        }
    }

    /// Calls `body(worker)` once per worker, bound as the worker's group is.
    static func forEachWorker(_ layout: WorkerLayout, _ body: (_ worker: Int) -> Void) {
        forEachParticipant(layout, layout.groups.map(\.threads)) { _, worker in body(worker) }
    }

    /// One `concurrentPerform` iteration per participating worker: the first `participants[g]`
    /// workers of each group `g`.
    private static func forEachParticipant(_ layout: WorkerLayout, _ participants: [Int],
                                           _ body: (_ group: Int, _ worker: Int) -> Void) {
        var workers: [(group: Int, worker: Int)] = []
        for group in layout.groups.indices {
            for worker in layout.workers(of: group).prefix(participants[group]) { workers.append((group, worker)) }
        }
        guard !workers.isEmpty else { return }
        if workers.count == 1 && layout.groups[workers[0].group].cpuset == nil {
            body(workers[0].group, workers[0].worker)
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers.count) { index in
                let (group, worker) = workers[index]
                withBinding(layout, group) { body(group, worker) }
            }
        }
    }

    /// Runs `body` with the calling thread bound to `group`'s PUs, then restores its binding.
    /// Binding errors were ruled out when the executor was made (`checkBinding`); should one
    /// happen anyway (a cgroup changed since), the tiles still run, unbound.
    private static func withBinding(_ layout: WorkerLayout, _ group: Int, _ body: () -> Void) {
        guard let cpuset = layout.groups[group].cpuset, let topology = layout.topology,
              let previous = try? topology.currentThreadBinding() else {
            body()
            return
        }
        _ = try? topology.bindCurrentThread(to: cpuset)
        body()
        _ = try? topology.bindCurrentThread(to: previous)
    }

    /// Binds a scratch thread to every group's PUs in turn, so that a bad cpuset is reported
    /// when the executor is made rather than ignored on every call.
    ///
    /// - Throws: `ExecutorError.bindingFailed` naming the group's first worker.
    static func checkBinding(_ layout: WorkerLayout) throws {
        guard layout.isBound, let topology = layout.topology else { return }
        let failure = Mutex<ExecutorError?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            for group in layout.groups.indices {
                guard let cpuset = layout.groups[group].cpuset else { continue }
                do {
                    _ = try topology.bindCurrentThread(to: cpuset)
                } catch {
                    let error = error as? TopologyError ?? .bindingFailed(cpuset: cpuset.description, errno: 0)
                    failure.withLock { $0 = .bindingFailed(worker: layout.firstWorker(of: group), error) }
                    break
                }
            }
            done.signal()
        }
        thread.start()
        done.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
