import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the topology tests: XML fixtures, `sched_getcpu`, threads.
enum TopologyTestSupport {
    /// Writes an hwloc v2 XML topology with one package + NUMA node per entry.
    ///
    /// Every core has one PU, its own L1d and L2; every package has an L3.
    /// PU OS indices run 0, 1, 2, ... across packages.
    ///
    /// - Parameters:
    ///   - coresPerNode: cores of each package / NUMA node, e.g. `[3, 1]`.
    ///   - l3Bytes: L3 size of each package (cycled).
    ///   - memoryOnlyNode: also attach a CPU-less NUMA node (like CXL) to the machine.
    /// - Returns: the path of a new temporary file.
    static func writeXML(
        coresPerNode: [Int], l3Bytes: [Int] = [16 << 20], memoryOnlyNode: Bool = false
    ) throws -> String {
        let totalPUs = coresPerNode.reduce(0, +)
        let nodeCount = coresPerNode.count + (memoryOnlyNode ? 1 : 0)
        func mask(_ range: Range<Int>) -> String {
            String(format: "0x%08x", range.reduce(0) { $0 | (1 << $1) })
        }
        func sets(_ pus: Range<Int>, nodes: Range<Int>) -> String {
            "cpuset=\"\(mask(pus))\" complete_cpuset=\"\(mask(pus))\" "
                + "nodeset=\"\(mask(nodes))\" complete_nodeset=\"\(mask(nodes))\""
        }
        var gp = 1
        func nextGP() -> Int { gp += 1; return gp }
        let all = 0..<totalPUs, allNodes = 0..<nodeCount
        var xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE topology SYSTEM "hwloc2.dtd">
            <topology version="2.0">
              <object type="Machine" os_index="0" \(sets(all, nodes: allNodes)) \
            allowed_cpuset="\(mask(all))" allowed_nodeset="\(mask(allNodes))" gp_index="1">

            """
        if memoryOnlyNode {
            xml += "    <object type=\"NUMANode\" os_index=\(q(coresPerNode.count)) "
                + "\(sets(all, nodes: coresPerNode.count..<nodeCount)) gp_index=\(q(nextGP())) "
                + "local_memory=\"4294967296\"/>\n"
        }
        var firstPU = 0
        for (node, cores) in coresPerNode.enumerated() {
            let pus = firstPU..<(firstPU + cores), nodes = node..<(node + 1)
            xml += "    <object type=\"Package\" os_index=\(q(node)) \(sets(pus, nodes: nodes)) gp_index=\(q(nextGP()))>\n"
            xml += "      <object type=\"NUMANode\" os_index=\(q(node)) \(sets(pus, nodes: nodes)) "
                + "gp_index=\(q(nextGP())) local_memory=\"\((node + 1) << 30)\"/>\n"
            xml += "      <object type=\"L3Cache\" \(sets(pus, nodes: nodes)) gp_index=\(q(nextGP())) "
                + "cache_size=\(q(l3Bytes[node % l3Bytes.count])) depth=\"3\" cache_linesize=\"64\" "
                + "cache_associativity=\"16\" cache_type=\"0\">\n"
            for pu in pus {
                let one = pu..<(pu + 1)
                xml += """
                            <object type="L2Cache" \(sets(one, nodes: nodes)) gp_index=\(q(nextGP())) cache_size="2097152" depth="2" cache_linesize="64" cache_associativity="8" cache_type="0">
                              <object type="L1Cache" \(sets(one, nodes: nodes)) gp_index=\(q(nextGP())) cache_size="49152" depth="1" cache_linesize="64" cache_associativity="12" cache_type="1">
                                <object type="Core" os_index=\(q(pu)) \(sets(one, nodes: nodes)) gp_index=\(q(nextGP()))>
                                  <object type="PU" os_index=\(q(pu)) \(sets(one, nodes: nodes)) gp_index=\(q(nextGP()))/>
                                </object>
                              </object>
                            </object>

                    """
            }
            xml += "      </object>\n    </object>\n"
            firstPU += cores
        }
        xml += "  </object>\n</topology>\n"
        return try writeTemporary(xml, suffix: ".xml")
    }

    /// Writes text to a new file under the temporary directory.
    ///
    /// - Returns: the file's path.
    static func writeTemporary(_ text: String, suffix: String) throws -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("multihead-topology-\(UUID().uuidString)\(suffix)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The CPU the calling thread runs on, via glibc `sched_getcpu`.
    ///
    /// Swift's Glibc module does not export it (it needs `_GNU_SOURCE`), so
    /// it is looked up with `dlsym`.
    static func currentCPU() -> Int {
        typealias SchedGetCPU = @convention(c) () -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "sched_getcpu") else { return -1 }
        return Int(unsafeBitCast(symbol, to: SchedGetCPU.self)())
    }

    /// Runs `body` on a fresh thread and waits, so bindings never leak into
    /// the test runner's own threads.
    static func onNewThread(_ body: @escaping @Sendable () throws -> Void) throws {
        let box = ErrorBox()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { try body() } catch { box.error = error }
            done.signal()
        }
        thread.start()
        done.wait()
        if let error = box.error { throw error }
    }

    private final class ErrorBox: @unchecked Sendable {
        var error: Error?
    }

    private static func q(_ value: Int) -> String { "\"\(value)\"" }
}
