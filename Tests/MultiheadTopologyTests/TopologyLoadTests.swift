import Foundation
import MultiheadTopology
import XCTest

/// Loading: this machine, synthetic descriptions, XML files, environment variables.
final class TopologyLoadTests: XCTestCase {
    func testThisMachineLoads() throws {
        let topology = try Topology.load()
        XCTAssertGreaterThanOrEqual(topology.numaNodes.count, 1)
        XCTAssertGreaterThanOrEqual(topology.processingUnits, 1)
        XCTAssertGreaterThanOrEqual(topology.cores.count, 1)
        XCTAssertLessThanOrEqual(topology.cores.count, topology.processingUnits)
        XCTAssertGreaterThan(topology.caches.l1dBytes, 0)
        XCTAssertGreaterThan(topology.caches.l2Bytes, 0)
        XCTAssertGreaterThan(topology.caches.l3Bytes, 0)
        // Every PU belongs to exactly one node.
        let nodePUs = topology.numaNodes.flatMap(\.puOSIndices)
        XCTAssertEqual(nodePUs.sorted(), topology.cpuset.puOSIndices)
        XCTAssertEqual(Set(nodePUs).count, nodePUs.count)
        if case .thisSystem = topology.source {
            XCTAssertTrue(topology.isThisSystem)
        }
        print(topology.describe())
    }

    func testTwoPackagesGiveTwoNodesOfTwoCores() throws {
        let topology = try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1")
        XCTAssertEqual(topology.source, .synthetic("package:2 numa:1 core:2 pu:1"))
        XCTAssertFalse(topology.isThisSystem)
        XCTAssertEqual(topology.numaNodes.count, 2)
        XCTAssertEqual(topology.numaNodes.map(\.cores.count), [2, 2])
        XCTAssertEqual(topology.numaNodes.map(\.puOSIndices), [[0, 1], [2, 3]])
        XCTAssertEqual(topology.numaNodes.map(\.index), [0, 1])
        XCTAssertEqual(topology.numaNodes.map(\.osIndex), [0, 1])
        XCTAssertEqual(topology.numaNodes.map(\.cpuset.description), ["0-1", "2-3"])
        XCTAssertEqual(topology.cores.count, 4)
        XCTAssertEqual(topology.processingUnits, 4)
        XCTAssertTrue(topology.numaNodes.allSatisfy { $0.memoryBytes > 0 })
        // Synthetic topologies without cache levels fall back to the defaults.
        XCTAssertEqual(topology.caches, CacheInfo.fallback)
        XCTAssertEqual(topology.caches.defaultedLevels, [.l1d, .l2, .l3])
    }

    func testFourNumaNodes() throws {
        let topology = try Topology.load(synthetic: "numa:4 core:1 pu:1")
        XCTAssertEqual(topology.numaNodes.count, 4)
        XCTAssertEqual(topology.numaNodes.map(\.cores.count), [1, 1, 1, 1])
        XCTAssertEqual(topology.numaNodes.map(\.puOSIndices), [[0], [1], [2], [3]])
    }

    func testHyperThreadsStayWithTheirCore() throws {
        let topology = try Topology.load(synthetic: "numa:2 core:2 pu:2")
        XCTAssertEqual(topology.processingUnits, 8)
        XCTAssertEqual(topology.cores.count, 4)
        XCTAssertEqual(topology.cores.map(\.puOSIndices), [[0, 1], [2, 3], [4, 5], [6, 7]])
    }

    func testSyntheticCacheLevelsAreRead() throws {
        let topology = try Topology.load(synthetic: "package:1 l3:1 l2:2 core:1 pu:1")
        XCTAssertEqual(topology.numaNodes.count, 1, "hwloc adds one NUMA node when none is given")
        XCTAssertEqual(topology.caches.defaultedLevels, [.l1d])
        XCTAssertEqual(topology.caches.l1dBytes, CacheInfo.fallback.l1dBytes)
        XCTAssertGreaterThan(topology.caches.l2Bytes, 0)
        XCTAssertGreaterThan(topology.caches.l3Bytes, topology.caches.l2Bytes)
    }

    func testUnevenXMLTopology() throws {
        let path = try TopologyTestSupport.writeXML(coresPerNode: [3, 1], l3Bytes: [16 << 20, 8 << 20])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = try Topology.load(xmlFile: path)
        XCTAssertEqual(topology.source, .xmlFile(path))
        XCTAssertFalse(topology.isThisSystem)
        XCTAssertEqual(topology.numaNodes.map(\.cores.count), [3, 1])
        XCTAssertEqual(topology.numaNodes.map(\.puOSIndices), [[0, 1, 2], [3]])
        XCTAssertEqual(topology.numaNodes.map(\.memoryBytes), [1 << 30, 2 << 30])
        XCTAssertEqual(
            topology.caches, CacheInfo(l1dBytes: 48 << 10, l2Bytes: 2 << 20, l3Bytes: 8 << 20),
            "the smallest cache of each level, none defaulted")
    }

    func testMemoryOnlyNodeIsLeftOut() throws {
        let path = try TopologyTestSupport.writeXML(coresPerNode: [2, 2], memoryOnlyNode: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = try Topology.load(xmlFile: path)
        XCTAssertEqual(topology.numaNodes.map(\.cores.count), [2, 2])
        XCTAssertEqual(topology.numaNodes.map(\.osIndex), [0, 1])
        XCTAssertEqual(topology.cores.count, 4)
    }

    func testEnvironmentSyntheticIsHonoured() throws {
        setenv("HWLOC_SYNTHETIC", "numa:3 core:1 pu:1", 1)
        defer { unsetenv("HWLOC_SYNTHETIC") }
        let topology = try Topology.load()
        XCTAssertEqual(topology.source, .synthetic("numa:3 core:1 pu:1"))
        XCTAssertEqual(topology.numaNodes.count, 3)
        XCTAssertFalse(topology.bindingSupported)
    }

    func testEnvironmentXMLFileIsHonoured() throws {
        let path = try TopologyTestSupport.writeXML(coresPerNode: [1, 2])
        defer { try? FileManager.default.removeItem(atPath: path) }
        setenv("HWLOC_XMLFILE", path, 1)
        defer { unsetenv("HWLOC_XMLFILE") }
        let topology = try Topology.load()
        XCTAssertEqual(topology.source, .xmlFile(path))
        XCTAssertEqual(topology.numaNodes.map(\.cores.count), [1, 2])
    }

    func testInvalidSyntheticDescriptionThrows() {
        XCTAssertThrowsError(try Topology.load(synthetic: "package:two core:1")) { error in
            guard case TopologyError.invalidSyntheticDescription(let text, _) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(text, "package:two core:1")
            XCTAssertTrue("\(error)".contains("invalid synthetic topology \"package:two core:1\""), "\(error)")
        }
    }

    func testMissingXMLFileThrows() {
        let path = "/nonexistent/multihead-topology.xml"
        XCTAssertThrowsError(try Topology.load(xmlFile: path)) { error in
            XCTAssertEqual(error as? TopologyError, .xmlFileUnreadable(path: path, errno: ENOENT))
            XCTAssertTrue("\(error)".contains("No such file or directory"), "\(error)")
        }
    }

    func testGarbageXMLFileThrows() throws {
        let path = try TopologyTestSupport.writeTemporary("this is not hwloc XML", suffix: ".xml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try Topology.load(xmlFile: path)) { error in
            switch error as? TopologyError {
            case .invalidXMLFile, .loadFailed: break
            default: XCTFail("unexpected error \(error)")
            }
        }
    }

    func testSummaryEncodesSnakeCaseJSON() throws {
        let topology = try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1")
        let data = try JSONEncoder().encode(topology.summary)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let nodes = try XCTUnwrap(json["numa_nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 2)
        XCTAssertEqual(nodes[1]["os_index"] as? Int, 1)
        XCTAssertEqual(nodes[1]["cores"] as? Int, 2)
        XCTAssertEqual(nodes[1]["pus"] as? [Int], [2, 3])
        XCTAssertNotNil(nodes[1]["memory_bytes"] as? Int)
        let caches = try XCTUnwrap(json["caches"] as? [String: Any])
        XCTAssertEqual(caches["l2_bytes"] as? Int, 1 << 20)
        XCTAssertEqual(json["binding_supported"] as? Bool, false)
        XCTAssertEqual(try JSONDecoder().decode(TopologySummary.self, from: data), topology.summary)
    }

    func testDescribeMentionsNodesAndBinding() throws {
        let text = try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1").describe()
        XCTAssertTrue(text.contains("2 NUMA nodes, 4 cores, 4 PUs"), text)
        XCTAssertTrue(text.contains("node 1 (os 1): 2 cores, PUs 2-3, 1 GiB"), text)
        XCTAssertTrue(text.contains("L3 32 MiB (default)"), text)
        XCTAssertTrue(text.contains("thread binding: unsupported"), text)
    }
}
