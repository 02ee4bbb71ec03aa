import Foundation
import XCTest
@testable import MultiheadTopology

final class MembindTests: XCTestCase {
    /// Memory binding of the calling thread: real on this machine when hwloc supports it, an
    /// honest `.unsupported` on a synthetic topology, and errors for impossible sets.
    func testBindCurrentThreadMemory() throws {
        let synthetic = try Topology.load(synthetic: "numa:2 core:1 pu:1")
        XCTAssertFalse(try synthetic.bindCurrentThreadMemory(to: synthetic.numaNodes[1].cpuset).isBound)
        XCTAssertThrowsError(try synthetic.bindCurrentThreadMemory(to: CPUSet()))
        XCTAssertThrowsError(try synthetic.bindCurrentThreadMemory(to: CPUSet(puOSIndices: [4096])))

        let machine = try Topology.load()
        guard machine.memoryBindingSupported else { throw XCTSkip("hwloc cannot bind memory here") }
        final class Box: @unchecked Sendable { var result: Result<BindResult, Error>? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.result = Result { try machine.bindCurrentThreadMemory(to: machine.numaNodes[0].cpuset) }
            // Memory allocated after the bind works as usual.
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 1 << 20)
            buffer.initialize(repeating: 1, count: 1 << 20)
            buffer.deallocate()
            done.signal()
        }
        thread.start()
        done.wait()
        XCTAssertTrue(try box.result!.get().isBound)
    }
}
