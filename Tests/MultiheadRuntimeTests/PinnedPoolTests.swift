import Synchronization
import XCTest
import MultiheadTopology
@testable import MultiheadRuntime

/// The pinned pool: jobs back to back and after sleeping, nested and concurrent calls, binding.
final class PinnedPoolTests: XCTestCase {
    func testManyJobsBackToBackAndAfterSleep() throws {
        let executor = try Executor(layout: .unbound(threads: 3), backend: .pinned, spinNanoseconds: 1_000)
        for round in 0..<300 {
            if round % 50 == 0 { usleep(5_000) }   // longer than the spin: workers are asleep
            let sum = Atomic<Int>(0)
            executor.run(tiles: 17) { tile, worker in
                XCTAssertTrue((0..<3).contains(worker))
                sum.wrappingAdd(tile, ordering: .relaxed)
            }
            XCTAssertEqual(sum.load(ordering: .relaxed), 17 * 16 / 2)
        }
    }

    func testNestedAndConcurrentCallsStillRunEveryTile() throws {
        let executor = try Executor(layout: .unbound(threads: 2), backend: .pinned)
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            executor.run(tiles: 8) { _, _ in
                executor.run(tiles: 3) { _, _ in total.wrappingAdd(1, ordering: .relaxed) }
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 8 * 3)
    }

    func testForEachWorkerCallsEveryWorkerOnce() throws {
        for backend in ExecutorBackend.allCases {
            let executor = try Executor(layout: .unbound(threads: 4), backend: backend)
            let seen = Mutex<[Int]>([])
            executor.forEachWorker { worker in seen.withLock { $0.append(worker) } }
            XCTAssertEqual(seen.withLock { $0.sorted() }, [0, 1, 2, 3], "\(backend)")
        }
    }

    /// Real binding: on a this-system topology of two one-PU nodes, every worker runs on its PU.
    func testWorkersRunOnTheirNodesPUs() throws {
        let machine = try Topology.load()
        try XCTSkipUnless(machine.bindingSupported, "thread binding unsupported on this machine")
        try XCTSkipUnless(CPUSet(puOSIndices: [0, 1]).isSubset(of: machine.cpuset), "needs PUs 0 and 1")
        let topology = try Topology.load(synthetic: "numa:2 core:1 pu:1", isThisSystem: true)
        let layout = WorkerLayout(groups: topology.numaNodes.map { WorkerGroup(node: $0.index, threads: 1, cpuset: $0.cpuset) },
                                  topology: topology)
        XCTAssertFalse(layout.callerParticipates)
        for backend in ExecutorBackend.allCases {
            let executor = try Executor(layout: layout, backend: backend)
            let cpus = Mutex<[Int: Set<Int>]>([:])
            for _ in 0..<20 {
                executor.run(tiles: 8) { _, worker in
                    let cpu = CurrentCPU.get() ?? -1
                    _ = cpus.withLock { $0[worker, default: []].insert(cpu) }
                }
            }
            XCTAssertEqual(cpus.withLock { $0 }, [0: [0], 1: [1]], "\(backend)")
        }
    }

    func testBindingFailureIsReported() throws {
        let machine = try Topology.load()
        try XCTSkipUnless(machine.bindingSupported, "thread binding unsupported on this machine")
        try XCTSkipIf(machine.cpuset.contains(63), "needs a machine without PU 63")
        let topology = try Topology.load(synthetic: "core:64 pu:1", isThisSystem: true)
        let layout = WorkerLayout(groups: [WorkerGroup(node: 0, threads: 1, cpuset: CPUSet(puOSIndices: [63]))],
                                  topology: topology)
        for backend in ExecutorBackend.allCases {
            XCTAssertThrowsError(try Executor(layout: layout, backend: backend)) { error in
                guard case ExecutorError.bindingFailed(let worker, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(worker, 0)
                XCTAssertTrue("\(error)".contains("could not bind the current thread to PUs 63"), "\(error)")
            }
        }
    }
}
