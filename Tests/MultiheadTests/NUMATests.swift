import Foundation
import Synchronization
import XCTest
import MultiheadRuntime
import MultiheadTopology
@testable import Multihead

/// NUMA-aware engines on synthetic and XML topologies: placement, same bits, binding, errors.
final class NUMATests: XCTestCase {
    static let twoNodes = "package:2 numa:1 core:2 pu:1"
    static let fourNodes = "package:4 numa:1 core:1 pu:1"

    private func engine(_ synthetic: String? = nil, xml: String? = nil, threads: Int = 0, policy: Engine.Policy? = nil,
                        executor: Engine.ExecutorKind = .pinned) throws -> Engine {
        var options = Engine.Options(threads: threads, policy: policy, executor: executor)
        if let synthetic { options.topology = try Topology.load(synthetic: synthetic) }
        if let xml { options.topology = try Topology.load(xmlFile: xml) }
        return try Engine(options: options)
    }

    func testPoliciesMakeOneGroupPerNode() throws {
        let two = try engine(Self.twoNodes)
        XCTAssertEqual(two.executor.layout.groups.map(\.node), [0, 1])
        XCTAssertEqual(two.executor.layout.groups.map(\.threads), [2, 2])
        XCTAssertTrue(two.mirrorsWeights)
        XCTAssertEqual(try engine(Self.fourNodes).executor.layout.groups.map(\.threads), [1, 1, 1, 1])
        XCTAssertEqual(try engine(Self.fourNodes, threads: 2).executor.layout.groups.map(\.node), [0, 1])
        let uneven = try engine(xml: try Self.writeXML(coresPerNode: [3, 1]))
        XCTAssertEqual(uneven.executor.layout.groups.map(\.threads), [3, 1])
        // cpuset: only the nodes it touches, with its PUs' share of threads.
        let some = try engine(Self.fourNodes, policy: .cpuset(CPUSet(puOSIndices: [1, 2])))
        XCTAssertEqual(some.executor.layout.groups.map(\.node), [1, 2])
        XCTAssertEqual(try engine(Self.twoNodes, policy: Engine.Policy.none).executor.layout.groups.count, 1)
        let isolated = try engine(Self.twoNodes, policy: .isolate)
        XCTAssertEqual(isolated.executor.layout.groups.count, 1)
        XCTAssertEqual(isolated.threadCount, 2)
    }

    /// Every tile of every phase of a forward runs once, on a worker of the node owning it.
    func testForwardTilesRunOnceOnTheirNodes() throws {
        for (topology, xml) in [(Self.twoNodes, nil), (Self.fourNodes, nil), (nil, try Self.writeXML(coresPerNode: [3, 1]))] {
            let engine = try engine(topology, xml: xml)
            let layout = engine.executor.layout
            for shape in [try PlanShape(batch: 8, heads: 4, seqLen: 100), try PlanShape(batch: 1, heads: 6, seqLen: 130, sourceLen: 40, needWeights: true)] {
                for phase in shape.phases(threads: engine.threadCount, scratchLimit: engine.scratchLimit) {
                    let runs = Mutex<[[Int]]>(Array(repeating: [], count: phase.space.count))
                    engine.executor.run(phase.space) { tile, worker in runs.withLock { $0[tile].append(worker) } }
                    let ran = runs.withLock { $0 }
                    for group in layout.groups.indices {
                        for range in layout.tiles(of: group, in: phase.space) {
                            for tile in range {
                                XCTAssertEqual(ran[tile].map { layout.group(ofWorker: $0) }, [group], "\(phase.name) tile \(tile)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The documented batch ranges, read back from the description.
    func testDescriptionShowsBatchRanges() throws {
        let description = try engine(Self.twoNodes).describe(shape: PlanShape(batch: 8, heads: 12, seqLen: 128))
        XCTAssertEqual(description.numaNodes.count, 2)
        XCTAssertEqual(description.threads, 4)
        let attention = try XCTUnwrap(description.plan?.phases.first { $0.name == "attention" })
        XCTAssertEqual(attention.assignments.map(\.batches), [[[0, 4]], [[4, 8]]])
        XCTAssertEqual(attention.assignments.map(\.workers), [[0, 1], [2, 3]])
        let json = try engine(Self.fourNodes).describeJSON(shape: PlanShape(batch: 2, heads: 4, seqLen: 64))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual((object["numa_nodes"] as? [Any])?.count, 4)
        XCTAssertEqual(object["threads"] as? Int, 4)
        XCTAssertNotNil(object["plan"] as? [String: Any])
    }

    /// Same bits whatever the topology, thread count, policy and executor.
    func testOutputsAreBitIdenticalAcrossTopologiesAndThreads() throws {
        let x = try Tensor<Float>(randomNormal: [70, 4, 64], seed: 11)
        let memory = try Tensor<Float>(randomNormal: [50, 4, 32], seed: 12)
        let single = try Tensor<Float>(randomNormal: [150, 1, 64], seed: 13)
        func outputs(_ engine: Engine) throws -> [[Float]] {
            let selfAttention = try MultiheadAttention(embedDim: 64, numHeads: 4, seed: 5, engine: engine)
            let cross = try MultiheadAttention(embedDim: 64, numHeads: 4, kdim: 32, vdim: 32, seed: 6, engine: engine)
            let a = try selfAttention(x, x, x)
            let b = try cross(x, memory, memory, needWeights: false, isCausal: false)
            let c = try selfAttention(single, single, single, averageAttnWeights: false, isCausal: true)
            return [a.output.scalars, a.weights!.scalars, b.output.scalars, c.output.scalars, c.weights!.scalars]
        }
        let reference = try outputs(try Engine(options: .init(threads: 1, policy: Engine.Policy.none, executor: .plain)))
        var engines: [(String, Engine)] = []
        for topology in [Self.twoNodes, Self.fourNodes, "numa:1 core:2 pu:1"] {
            for threads in [0, 1, 2] {
                for kind in [Engine.ExecutorKind.pinned, .dispatch] {
                    engines.append(("\(topology) \(threads) \(kind)", try engine(topology, threads: threads, executor: kind)))
                }
            }
        }
        engines.append(("uneven", try engine(xml: try Self.writeXML(coresPerNode: [3, 1]))))
        engines.append(("machine", try Engine(threads: 2)))
        engines.append(("plain 2", try Engine(options: .init(threads: 2, executor: .plain))))
        for (name, engine) in engines {
            XCTAssertTrue(try outputs(engine) == reference, name)
        }
    }

    /// Real binding: a this-system topology of two one-PU nodes; each worker runs on its node's PU.
    func testWorkersRunInsideTheirCPUSet() throws {
        let machine = try Topology.load()
        try XCTSkipUnless(machine.bindingSupported, "thread binding unsupported on this machine")
        try XCTSkipUnless(CPUSet(puOSIndices: [0, 1]).isSubset(of: machine.cpuset), "needs PUs 0 and 1")
        let topology = try Topology.load(synthetic: "numa:2 core:1 pu:1", isThisSystem: true)
        for kind in [Engine.ExecutorKind.pinned, .dispatch] {
            let engine = try Engine(options: .init(policy: .distribute, executor: kind, topology: topology))
            let layout = engine.executor.layout
            XCTAssertEqual(layout.groups.map { $0.cpuset?.description }, ["0", "1"])
            let violations = Mutex<[String]>([])
            for _ in 0..<10 {
                engine.executor.run(tiles: 16) { _, worker in
                    let cpu = CurrentCPU.get() ?? -1
                    let allowed = layout.groups[layout.group(ofWorker: worker)].cpuset!
                    if !allowed.contains(cpu) { violations.withLock { $0.append("worker \(worker) on PU \(cpu)") } }
                }
            }
            XCTAssertEqual(violations.withLock { $0 }, [], "\(kind)")
            let m = try MultiheadAttention(embedDim: 64, numHeads: 4, seed: 1, engine: engine)
            let x = try Tensor<Float>(randomNormal: [70, 2, 64], seed: 2)
            let reference = try MultiheadAttention(embedDim: 64, numHeads: 4, seed: 1, engine: try Engine(threads: 1))
            XCTAssertTrue(try m(x, x, x).output.scalars == reference(x, x, x).output.scalars)
        }
    }

    func testPolicyAndCPUSetErrors() throws {
        let pus = try Topology.load().cpuset.count
        func assertInvalid(_ make: @autoclosure () throws -> Any, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try make(), line: line) { error in
                guard case MultiheadError.invalidArgument(let message) = error else { return XCTFail("\(error)", line: line) }
                XCTAssertTrue(message.contains(fragment), message, line: line)
            }
        }
        assertInvalid(try Engine(options: .init(policy: .cpuset(CPUSet()))), "cpuset is empty")
        assertInvalid(try Engine(options: .init(policy: .cpuset(CPUSet(puOSIndices: [pus + 5])))), "does not have")
        assertInvalid(try Engine(options: .init(threads: pus + 1, policy: .distribute)), "\(pus + 1) threads requested")
        assertInvalid(try Engine(options: .init(threads: 2, policy: .cpuset(CPUSet(puOSIndices: [0])))), "binds threads to 1 PU")
        assertInvalid(try Engine(options: .init(threads: -1)), "threads must be >= 0")
        assertInvalid(try Engine.Policy(parsing: "everywhere"), "unknown policy")
        assertInvalid(try Engine.Policy(parsing: "0-x"), "cpuset: invalid CPU list")
        XCTAssertEqual(try Engine.Policy(parsing: "cpuset:0-1"), .cpuset(CPUSet(puOSIndices: [0, 1])))
        // The lenient default: more threads than PUs is allowed, without binding.
        let many = try Engine(threads: pus + 1)
        XCTAssertEqual(many.threadCount, pus + 1)
        XCTAssertEqual(many.policy, Engine.Policy.none)
        // PUs the OS refuses (a this-system claim with PUs this machine lacks).
        let machine = try Topology.load()
        if machine.bindingSupported && !machine.cpuset.contains(63) {
            let fake = try Topology.load(synthetic: "core:64 pu:1", isThisSystem: true)
            for kind in [Engine.ExecutorKind.pinned, .dispatch] {
                assertInvalid(try Engine(options: .init(threads: 1, policy: .cpuset(CPUSet(puOSIndices: [63])),
                                                        executor: kind, topology: fake)), "could not bind")
            }
        }
    }

    func testReplicasAreOnePerNode() throws {
        let two = try engine(Self.twoNodes)
        let made = Mutex(0)
        let replicas = two.replicate(bytes: 1 << 20) { made.withLock { $0 += 1; return $0 } }
        XCTAssertEqual(made.withLock { $0 }, 2)
        XCTAssertEqual(replicas[worker: 0], replicas[worker: 1])
        XCTAssertNotEqual(replicas[worker: 1], replicas[worker: 2])
        let one = try Engine(threads: 2)
        XCTAssertEqual(one.replicate(bytes: 64) { 7 }.copies.count, 1)
    }

    /// An hwloc XML topology of one package + NUMA node per entry (one PU per core).
    static func writeXML(coresPerNode: [Int]) throws -> String {
        func mask(_ range: Range<Int>) -> String { String(format: "0x%08x", range.reduce(0) { $0 | (1 << $1) }) }
        func sets(_ pus: Range<Int>, _ nodes: Range<Int>) -> String {
            "cpuset=\"\(mask(pus))\" complete_cpuset=\"\(mask(pus))\" nodeset=\"\(mask(nodes))\" complete_nodeset=\"\(mask(nodes))\""
        }
        var gp = 1
        func next() -> Int { gp += 1; return gp }
        let all = 0..<coresPerNode.reduce(0, +), allNodes = 0..<coresPerNode.count
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n<topology version=\"2.0\">\n"
            + "<object type=\"Machine\" os_index=\"0\" \(sets(all, allNodes)) allowed_cpuset=\"\(mask(all))\" allowed_nodeset=\"\(mask(allNodes))\" gp_index=\"1\">\n"
        var first = 0
        for (node, cores) in coresPerNode.enumerated() {
            let pus = first..<(first + cores), nodes = node..<(node + 1)
            xml += "<object type=\"Package\" os_index=\"\(node)\" \(sets(pus, nodes)) gp_index=\"\(next())\">\n"
                + "<object type=\"NUMANode\" os_index=\"\(node)\" \(sets(pus, nodes)) gp_index=\"\(next())\" local_memory=\"1073741824\"/>\n"
            for pu in pus {
                xml += "<object type=\"Core\" os_index=\"\(pu)\" \(sets(pu..<(pu + 1), nodes)) gp_index=\"\(next())\">\n"
                    + "<object type=\"PU\" os_index=\"\(pu)\" \(sets(pu..<(pu + 1), nodes)) gp_index=\"\(next())\"/>\n</object>\n"
            }
            xml += "</object>\n"
            first += cores
        }
        xml += "</object>\n</topology>\n"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("multihead-numa-\(UUID().uuidString).xml")
        try xml.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
