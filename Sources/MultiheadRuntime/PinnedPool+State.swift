import Dispatch
import Foundation
import Synchronization
import MultiheadTopology

/// One worker's mailbox: the job number it was last posted, and where it sleeps. A class per
/// worker keeps each worker's hot atomic on its own heap block, away from the others'.
final class WorkerSlot: @unchecked Sendable {
    let epoch = Atomic<UInt64>(0)
    let parker = Parker()
    /// The worker's group, fixed for the pool's life.
    let group: Int

    init(group: Int) { self.group = group }
}

/// A group's tile counter, alone in its heap block.
final class TileCounter: @unchecked Sendable {
    let next = Atomic<Int>(0)
}

/// Everything a pool shares with its threads. The job fields are written by the caller while no
/// worker is inside a job, then published by the release of a worker's `epoch`.
///
/// A job is open from when it is posted until every tile is finished; only then does the caller
/// close it and wait for the workers inside it to leave. A worker that wakes up late, after the
/// others (or the caller alone) have done every tile, finds the job closed and goes back to
/// waiting without touching it: a fork/join never waits for a sleeping thread to wake up unless
/// that thread's group has tiles nobody else may run.
final class PoolState: @unchecked Sendable {
    let layout: WorkerLayout
    let slots: [WorkerSlot]
    let counters: [TileCounter]
    /// `job << 21 | open << 20 | workers inside the job`.
    let gate = Atomic<UInt64>(0)
    /// Tiles (or `workerBody` calls) finished in the current job.
    let finished = Atomic<Int>(0)
    let busy = Atomic<Bool>(false)
    let shutdown = Atomic<Bool>(false)
    let callerParker = Parker()
    let spinNanoseconds: UInt64
    private static let openBit: UInt64 = 1 << 20
    private static let insideMask: UInt64 = openBit - 1

    // The job.
    private var job: UInt64 = 0
    private var total = 0
    var tileBody: ((Int, Int) -> Void)?
    var workerBody: ((Int) -> Void)?
    var space = TileSpace(tiles: 0)

    // Start-up reports.
    private let startup = NSCondition()
    private var started = 0
    private var startupFailure: ExecutorError?

    init(layout: WorkerLayout, spinNanoseconds: UInt64) {
        self.layout = layout
        self.spinNanoseconds = spinNanoseconds
        slots = (0..<layout.threadCount).map { WorkerSlot(group: layout.group(ofWorker: $0)) }
        counters = layout.groups.map { _ in TileCounter() }
    }

    /// Wakes `worker` for job `job` (a value no earlier post used).
    func post(_ worker: Int, job: UInt64) {
        let slot = slots[worker]
        slot.epoch.store(job, ordering: .sequentiallyConsistent)
        slot.parker.unpark()
    }

    /// Posts a new job id to every worker so that each sees a change (used to shut down).
    func postAll() {
        job &+= 1
        for worker in slots.indices { post(worker, job: job) }
    }

    /// Runs the published job: opens it, posts the first `participantsOf(g)` workers of each
    /// group (counting `units` tiles or calls in all), takes part as worker 0 when the layout
    /// allows, waits until every unit is finished, then closes the job and waits for the workers
    /// inside it to leave.
    func execute(units: Int, participantsOf: (_ group: Int) -> Int) {
        job &+= 1
        total = units
        finished.store(0, ordering: .relaxed)
        for counter in counters { counter.next.store(0, ordering: .relaxed) }
        gate.store(job << 21 | Self.openBit, ordering: .sequentiallyConsistent)
        var callerWorks = false
        for group in layout.groups.indices {
            for worker in layout.workers(of: group).prefix(participantsOf(group)) {
                if worker == 0 && layout.callerParticipates { callerWorks = true } else { post(worker, job: job) }
            }
        }
        if callerWorks { work(worker: 0) }
        wait { self.finished.load(ordering: .sequentiallyConsistent) >= units }
        gate.bitwiseAnd(~Self.openBit, ordering: .sequentiallyConsistent)
        wait { self.gate.load(ordering: .sequentiallyConsistent) & Self.insideMask == 0 }
    }

    /// Spins, then sleeps, until `ready()`.
    private func wait(until ready: () -> Bool) {
        if !Spin.wait(nanoseconds: spinNanoseconds, until: ready) { callerParker.park(until: ready) }
    }

    /// Enters job `job` if it is still open; a worker reads the job's fields only once inside.
    private func enter(_ job: UInt64) -> Bool {
        var current = gate.load(ordering: .sequentiallyConsistent)
        while current >> 21 == job & (UInt64.max >> 21) && current & Self.openBit != 0 {
            let (exchanged, original) = gate.compareExchange(
                expected: current, desired: current + 1, ordering: .sequentiallyConsistent)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Leaves the job; the last worker out of a closed job wakes the caller.
    private func leave() {
        let after = gate.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue
        if after & Self.openBit == 0 && after & Self.insideMask == 0 { callerParker.unpark() }
    }

    /// Counts a finished unit; the last one wakes the caller.
    @inline(__always)
    private func finish() {
        if finished.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue == total { callerParker.unpark() }
    }

    /// The job's share of one worker: its `workerBody` call, or tiles from its group's counter.
    @inline(never)
    func work(worker: Int) {
        if let body = workerBody {
            body(worker)
            finish()
            return
        }
        guard let body = tileBody else { return }
        let group = slots[worker].group
        var cursor = GroupCursor(layout: layout, space: space, group: group)
        let counter = counters[group]
        while true {
            let position = counter.next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard let tile = cursor.tile(at: position) else { return }
            body(tile, worker)
            finish()
        }
    }

    /// A pool thread's life: bind, report, then wait for jobs until shutdown.
    func workerMain(worker: Int) {
        let slot = slots[worker]
        var failure: ExecutorError?
        if let cpuset = layout.groups[slot.group].cpuset, let topology = layout.topology {
            do {
                // The worker's scratch (allocated and first touched here) stays on its node.
                if case .bound = try topology.bindCurrentThread(to: cpuset) {
                    _ = try? topology.bindCurrentThreadMemory(to: cpuset)
                }
            } catch let error as TopologyError {
                failure = .bindingFailed(worker: worker, error)
            } catch {
                failure = .bindingFailed(worker: worker, .bindingFailed(cpuset: cpuset.description, errno: 0))
            }
        }
        startup.withLock {
            started += 1
            if startupFailure == nil { startupFailure = failure }
            startup.signal()
        }
        if failure != nil { return }
        var seen: UInt64 = 0
        while true {
            let ready = { slot.epoch.load(ordering: .sequentiallyConsistent) != seen }
            if !Spin.wait(nanoseconds: spinNanoseconds, until: ready) { slot.parker.park(until: ready) }
            seen = slot.epoch.load(ordering: .acquiring)
            if shutdown.load(ordering: .acquiring) { return }
            guard enter(seen) else { continue }
            work(worker: worker)
            leave()
        }
    }

    /// Waits until `threads` workers have reported.
    ///
    /// - Returns: the first failure reported, or nil.
    func waitForStartup(threads: Int) -> ExecutorError? {
        startup.withLock {
            while started < threads { startup.wait() }
            return startupFailure
        }
    }
}
