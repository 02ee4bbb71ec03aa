import Foundation
import MultiheadTopology
import XCTest

/// Thread binding and node-local allocation.
final class BindingTests: XCTestCase {
    func testBindingToFirstPUOfThisMachine() throws {
        let topology = try Topology.load()
        try XCTSkipUnless(topology.bindingSupported, "thread binding unsupported: \(topology.describe())")
        let firstPU = try XCTUnwrap(topology.cpuset.puOSIndices.first)
        try TopologyTestSupport.onNewThread {
            let result = try topology.bindCurrentThread(to: CPUSet(puOSIndices: [firstPU]))
            XCTAssertEqual(result, .bound)
            XCTAssertEqual(try topology.currentThreadBinding(), CPUSet(puOSIndices: [firstPU]))
            XCTAssertEqual(TopologyTestSupport.currentCPU(), firstPU)
        }
    }

    func testBindingToANodeKeepsTheThreadOnIt() throws {
        let topology = try Topology.load()
        try XCTSkipUnless(topology.bindingSupported, "thread binding unsupported")
        let node = try XCTUnwrap(topology.numaNodes.last)
        try TopologyTestSupport.onNewThread {
            XCTAssertEqual(try topology.bindCurrentThread(to: node), .bound)
            XCTAssertTrue(node.cpuset.contains(TopologyTestSupport.currentCPU()))
        }
    }

    func testPlainSyntheticTopologyReportsUnsupported() throws {
        let topology = try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1")
        XCTAssertFalse(topology.bindingSupported)
        XCTAssertFalse(topology.memoryBindingSupported)
        try TopologyTestSupport.onNewThread {
            let result = try topology.bindCurrentThread(to: topology.numaNodes[1].cpuset)
            guard case .unsupported(let reason) = result else {
                return XCTFail("a synthetic topology must not claim to bind, got \(result)")
            }
            XCTAssertFalse(result.isBound)
            XCTAssertTrue(reason.contains("not this system"), reason)
            XCTAssertNil(try topology.currentThreadBinding())
        }
    }

    func testSyntheticThisSystemTopologyReallyBinds() throws {
        let machine = try Topology.load()
        try XCTSkipUnless(machine.bindingSupported, "thread binding unsupported on this machine")
        try XCTSkipUnless(
            CPUSet(puOSIndices: [0, 1]).isSubset(of: machine.cpuset), "needs PUs 0 and 1, have \(machine.cpuset)")
        let topology = try Topology.load(synthetic: "numa:2 core:1 pu:1", isThisSystem: true)
        XCTAssertTrue(topology.isThisSystem)
        XCTAssertTrue(topology.bindingSupported)
        XCTAssertEqual(topology.numaNodes.count, 2)
        try TopologyTestSupport.onNewThread {
            for node in topology.numaNodes.reversed() {
                XCTAssertEqual(try topology.bindCurrentThread(to: node), .bound)
                XCTAssertEqual(TopologyTestSupport.currentCPU(), node.puOSIndices[0])
                XCTAssertEqual(try topology.currentThreadBinding(), node.cpuset)
            }
        }
    }

    func testBindingErrors() throws {
        let topology = try Topology.load(synthetic: "core:2 pu:1")
        XCTAssertThrowsError(try topology.bindCurrentThread(to: CPUSet())) { error in
            XCTAssertEqual(error as? TopologyError, .emptyCPUSet)
        }
        XCTAssertThrowsError(try topology.bindCurrentThread(to: CPUSet(puOSIndices: [1, 5]))) { error in
            XCTAssertEqual(error as? TopologyError, .cpuSetOutsideTopology(requested: "1,5", available: "0-1"))
            XCTAssertEqual("\(error)", "CPU set 1,5 is not inside this topology's PUs 0-1")
        }
    }

    func testBindingToAbsentPUThrows() throws {
        let machine = try Topology.load()
        try XCTSkipUnless(machine.bindingSupported, "thread binding unsupported on this machine")
        try XCTSkipIf(machine.cpuset.contains(63), "needs a machine without PU 63")
        // A this-system claim whose PUs do not exist: the OS refuses, and the error says so.
        let topology = try Topology.load(synthetic: "core:64 pu:1", isThisSystem: true)
        try TopologyTestSupport.onNewThread {
            XCTAssertThrowsError(try topology.bindCurrentThread(to: CPUSet(puOSIndices: [63]))) { error in
                guard case TopologyError.bindingFailed(let cpuset, _) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(cpuset, "63")
                XCTAssertTrue("\(error)".hasPrefix("could not bind the current thread to PUs 63: "), "\(error)")
            }
        }
    }

    func testNodeLocalAllocationOnThisMachine() throws {
        let topology = try Topology.load()
        let bytes = 1 << 20
        for node in topology.numaNodes {
            let memory = try XCTUnwrap(topology.allocateMembind(bytes: bytes, node: node))
            XCTAssertEqual(Int(bitPattern: memory) % 4096, 0, "page aligned")
            memory.initializeMemory(as: UInt8.self, repeating: 0xA5, count: bytes)
            XCTAssertEqual(memory.load(fromByteOffset: bytes - 1, as: UInt8.self), 0xA5)
            topology.freeMembind(memory, bytes: bytes)
        }
    }

    func testAllocationFallsBackOnSyntheticTopology() throws {
        let topology = try Topology.load(synthetic: "numa:4 core:1 pu:1")
        for node in topology.numaNodes {
            let memory = try XCTUnwrap(topology.allocateMembind(bytes: 12345, node: node))
            XCTAssertEqual(Int(bitPattern: memory) % 64, 0, "at least cache-line aligned")
            memory.storeBytes(of: UInt64.max, toByteOffset: 12336, as: UInt64.self)
            topology.freeMembind(memory, bytes: 12345)
        }
    }

    func testConcurrentReadsAndBinds() throws {
        let topology = try Topology.load()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<100 {
                XCTAssertEqual(topology.summary.processingUnits, topology.processingUnits)
                if topology.bindingSupported {
                    XCTAssertNotNil(try? topology.currentThreadBinding())
                }
                if let memory = topology.allocateMembind(bytes: 4096, node: topology.numaNodes[0]) {
                    topology.freeMembind(memory, bytes: 4096)
                }
            }
        }
    }
}
