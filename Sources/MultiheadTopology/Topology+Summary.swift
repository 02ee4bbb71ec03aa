/// A `Codable` snapshot of a topology, for JSON output (`multihead topology --json`).
///
/// Keys are snake_case so that the JSON reads the same from C and Python:
/// `{"source": ..., "numa_nodes": [{"index", "os_index", "cores", "pus",
/// "memory_bytes"}], "caches": {"l1d_bytes", ...}, ...}`.
public struct TopologySummary: Codable, Hashable, Sendable {
    /// One NUMA node of the summary.
    public struct Node: Codable, Hashable, Sendable {
        /// hwloc logical index.
        public var index: Int
        /// OS node number; -1 when unknown.
        public var osIndex: Int
        /// Number of cores.
        public var cores: Int
        /// OS indices of the node's PUs.
        public var pus: [Int]
        /// Local memory in bytes.
        public var memoryBytes: Int

        enum CodingKeys: String, CodingKey {
            case index, osIndex = "os_index", cores, pus, memoryBytes = "memory_bytes"
        }
    }

    /// `Topology.Source` as text, e.g. `"this system"`.
    public var source: String
    /// hwloc header version the module was built with.
    public var hwlocVersion: String
    /// Whether hwloc treats the topology as the running machine.
    public var isThisSystem: Bool
    /// Whether thread binding takes effect.
    public var bindingSupported: Bool
    /// Whether node-local allocation takes effect.
    public var memoryBindingSupported: Bool
    /// Total cores.
    public var cores: Int
    /// Total PUs.
    public var processingUnits: Int
    /// The NUMA nodes.
    public var numaNodes: [Node]
    /// Cache sizes.
    public var caches: CacheInfo

    enum CodingKeys: String, CodingKey {
        case source, hwlocVersion = "hwloc_version", isThisSystem = "is_this_system"
        case bindingSupported = "binding_supported", memoryBindingSupported = "memory_binding_supported"
        case cores, processingUnits = "processing_units", numaNodes = "numa_nodes", caches
    }
}

extension Topology {
    /// A `Codable` snapshot of this topology.
    public var summary: TopologySummary {
        TopologySummary(
            source: source.description,
            hwlocVersion: Hwloc.headerVersion,
            isThisSystem: isThisSystem,
            bindingSupported: bindingSupported,
            memoryBindingSupported: memoryBindingSupported,
            cores: cores.count,
            processingUnits: processingUnits,
            numaNodes: numaNodes.map {
                TopologySummary.Node(
                    index: $0.index, osIndex: $0.osIndex, cores: $0.cores.count,
                    pus: $0.puOSIndices, memoryBytes: $0.memoryBytes)
            },
            caches: caches)
    }

    /// Describes the topology for people, one line per NUMA node.
    ///
    /// Example:
    /// ```
    /// Topology of this system (hwloc 2.9.0): 1 NUMA node, 2 cores, 2 PUs
    ///   caches: L1d 32 KiB, L2 1 MiB, L3 32 MiB
    ///   thread binding: supported; memory binding: supported
    ///   node 0 (os 0): 2 cores, PUs 0-1, 12.5 GiB
    /// ```
    ///
    /// - Returns: multi-line text without a trailing newline.
    public func describe() -> String {
        let plural = { (count: Int, noun: String) in "\(count) \(noun)\(count == 1 ? "" : "s")" }
        var lines = [
            "Topology of \(source) (hwloc \(Hwloc.headerVersion)): "
                + "\(plural(numaNodes.count, "NUMA node")), \(plural(cores.count, "core")), "
                + plural(processingUnits, "PU"),
        ]
        let cacheText = CacheLevel.allCases.map { level in
            let name = level == .l1d ? "L1d" : level.rawValue.uppercased()
            let note = caches.defaultedLevels.contains(level) ? " (default)" : ""
            return "\(name) \(ByteCountText.format(caches.bytes(level)))\(note)"
        }
        lines.append("  caches: " + cacheText.joined(separator: ", "))
        let threadText = bindingUnsupportedReason.map { "unsupported (\($0))" } ?? "supported"
        let memoryText = memoryBindingSupported ? "supported" : "unsupported (plain allocation)"
        lines.append("  thread binding: \(threadText); memory binding: \(memoryText)")
        for node in numaNodes {
            lines.append(
                "  node \(node.index) (os \(node.osIndex)): \(plural(node.cores.count, "core")), "
                    + "PUs \(node.cpuset), \(ByteCountText.format(node.memoryBytes))")
        }
        return lines.joined(separator: "\n")
    }
}
