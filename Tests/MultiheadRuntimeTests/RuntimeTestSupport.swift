import Foundation
import Synchronization
import XCTest
import MultiheadTopology
@testable import MultiheadRuntime

/// Helpers of the runtime tests: an uneven XML topology, recording which worker ran which tile.
enum RuntimeTestSupport {
    /// Writes an hwloc XML topology of one package + NUMA node per entry of `coresPerNode`
    /// (one PU per core, PU OS indices 0, 1, 2, ... across nodes).
    ///
    /// - Returns: the path of a new temporary file.
    static func writeXML(coresPerNode: [Int]) throws -> String {
        func mask(_ range: Range<Int>) -> String { String(format: "0x%08x", range.reduce(0) { $0 | (1 << $1) }) }
        func sets(_ pus: Range<Int>, _ nodes: Range<Int>) -> String {
            "cpuset=\"\(mask(pus))\" complete_cpuset=\"\(mask(pus))\" nodeset=\"\(mask(nodes))\" complete_nodeset=\"\(mask(nodes))\""
        }
        var gp = 1
        func next() -> Int { gp += 1; return gp }
        let total = coresPerNode.reduce(0, +)
        let all = 0..<total, allNodes = 0..<coresPerNode.count
        var xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE topology SYSTEM "hwloc2.dtd">
            <topology version="2.0">
            <object type="Machine" os_index="0" \(sets(all, allNodes)) allowed_cpuset="\(mask(all))" allowed_nodeset="\(mask(allNodes))" gp_index="1">

            """
        var firstPU = 0
        for (node, cores) in coresPerNode.enumerated() {
            let pus = firstPU..<(firstPU + cores), nodes = node..<(node + 1)
            xml += "<object type=\"Package\" os_index=\"\(node)\" \(sets(pus, nodes)) gp_index=\"\(next())\">\n"
            xml += "<object type=\"NUMANode\" os_index=\"\(node)\" \(sets(pus, nodes)) gp_index=\"\(next())\" local_memory=\"1073741824\"/>\n"
            for pu in pus {
                xml += "<object type=\"Core\" os_index=\"\(pu)\" \(sets(pu..<(pu + 1), nodes)) gp_index=\"\(next())\">\n"
                xml += "<object type=\"PU\" os_index=\"\(pu)\" \(sets(pu..<(pu + 1), nodes)) gp_index=\"\(next())\"/>\n</object>\n"
            }
            xml += "</object>\n"
            firstPU += cores
        }
        xml += "</object>\n</topology>\n"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("multihead-runtime-\(UUID().uuidString).xml")
        try xml.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// Two nodes, of 3 cores and 1 core.
    static func unevenXML() throws -> String { try writeXML(coresPerNode: [3, 1]) }

    /// Runs `space` on `executor`, recording the workers that ran each tile.
    ///
    /// - Returns: per tile, the worker ids that ran it (exactly one when all is well).
    static func record(_ executor: Executor, _ space: TileSpace) -> [[Int]] {
        let runs = Mutex<[[Int]]>([[Int]](repeating: [], count: space.count))
        executor.run(space) { tile, worker in
            runs.withLock { $0[tile].append(worker) }
        }
        return runs.withLock { $0 }
    }
}
