#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The machine's NUMA nodes, cores, PUs and caches, read once from hwloc.
///
/// Everything public is a plain value copied out at load time; no hwloc
/// pointer leaks. Binding and node-local allocation live in
/// `Topology+Binding.swift`, text and JSON output in `Topology+Summary.swift`.
///
/// Thread safety: the topology is never modified after `load`, and hwloc
/// allows concurrent reads of a loaded topology, including concurrent
/// `hwloc_set_cpubind` / `hwloc_alloc_membind` calls. One `Topology` can
/// therefore be shared by every worker thread.
public final class Topology: @unchecked Sendable {
    /// Where a topology came from.
    public enum Source: Hashable, Sendable, CustomStringConvertible {
        /// The running machine (hwloc's native discovery).
        case thisSystem
        /// An hwloc synthetic description.
        case synthetic(String)
        /// An hwloc XML export.
        case xmlFile(String)

        public var description: String {
            switch self {
            case .thisSystem: "this system"
            case .synthetic(let text): "synthetic \"\(text)\""
            case .xmlFile(let path): "XML file \(path)"
            }
        }
    }

    /// Where the topology came from.
    public let source: Source
    /// Whether hwloc treats the topology as the running machine, which
    /// binding needs. False for synthetic and XML topologies unless loaded
    /// with `isThisSystem: true` (or `HWLOC_THISSYSTEM=1`).
    public let isThisSystem: Bool
    /// NUMA nodes with at least one core, in logical order. A machine
    /// without NUMA objects gets one node holding every PU; memory-only
    /// nodes (HBM, CXL) are left out.
    public let numaNodes: [NUMANode]
    /// Every core, in node order then logical order.
    public let cores: [Core]
    /// Every PU of the topology.
    public let cpuset: CPUSet
    /// Number of PUs (hardware threads).
    public var processingUnits: Int { cpuset.count }
    /// Cache sizes for kernel blocking.
    public let caches: CacheInfo
    /// Whether `bindCurrentThread(to:)` really binds
    /// (`set_thisthread_cpubind` support on a this-system topology).
    public let bindingSupported: Bool
    /// Whether `allocateMembind(bytes:node:)` really binds memory to a node.
    public let memoryBindingSupported: Bool

    /// The `hwloc_topology_t`, destroyed in `deinit`.
    let handle: OpaquePointer
    /// Whether `currentThreadBinding()` can ask hwloc.
    let bindingQuerySupported: Bool

    deinit {
        Hwloc.destroy(handle)
    }

    /// Loads the running machine's topology.
    ///
    /// hwloc itself honours `HWLOC_SYNTHETIC`, `HWLOC_XMLFILE` (in that order)
    /// and `HWLOC_THISSYSTEM`, so tests and users can substitute a topology
    /// without code changes; `source` then reports the substitute.
    ///
    /// - Returns: the loaded topology.
    /// - Throws: `TopologyError` when hwloc cannot initialise or load.
    public static func load() throws -> Topology {
        let environment = { (name: String) -> String? in
            guard let value = getenv(name) else { return nil }
            let text = String(cString: value)
            return text.isEmpty ? nil : text
        }
        let source: Source
        if let synthetic = environment("HWLOC_SYNTHETIC") {
            source = .synthetic(synthetic)
        } else if let path = environment("HWLOC_XMLFILE") {
            source = .xmlFile(path)
        } else {
            source = .thisSystem
        }
        let handle = try Hwloc.createTopology(
            synthetic: nil, xmlFile: nil, isThisSystem: false, sourceName: source.description)
        return Topology(handle: handle, source: source)
    }

    /// Loads an hwloc synthetic topology, e.g. `"package:2 numa:1 core:2 pu:1"`.
    ///
    /// - Parameters:
    ///   - description: the synthetic description (hwloc syntax).
    ///   - isThisSystem: claim the topology is the running machine so that
    ///     binding takes effect; only sound when its PU OS indices exist here.
    /// - Returns: the loaded topology.
    /// - Throws: `TopologyError.invalidSyntheticDescription` for bad syntax.
    public static func load(synthetic description: String, isThisSystem: Bool = false) throws -> Topology {
        let source = Source.synthetic(description)
        let handle = try Hwloc.createTopology(
            synthetic: description, xmlFile: nil, isThisSystem: isThisSystem,
            sourceName: source.description)
        return Topology(handle: handle, source: source)
    }

    /// Loads a topology from an hwloc XML export (`lstopo foo.xml`).
    ///
    /// - Parameters:
    ///   - path: the XML file.
    ///   - isThisSystem: claim the topology is the running machine (see
    ///     `load(synthetic:isThisSystem:)`).
    /// - Returns: the loaded topology.
    /// - Throws: `TopologyError.xmlFileUnreadable` or `.invalidXMLFile`.
    public static func load(xmlFile path: String, isThisSystem: Bool = false) throws -> Topology {
        let source = Source.xmlFile(path)
        let handle = try Hwloc.createTopology(
            synthetic: nil, xmlFile: path, isThisSystem: isThisSystem, sourceName: source.description)
        return Topology(handle: handle, source: source)
    }

    /// Copies everything out of a loaded hwloc topology.
    private init(handle: OpaquePointer, source: Source) {
        self.handle = handle
        self.source = source
        isThisSystem = Hwloc.isThisSystem(handle)
        cpuset = Hwloc.topologyCPUSet(handle)
        numaNodes = Self.assembleNodes(handle)
        cores = numaNodes.flatMap(\.cores)
        caches = Self.readCaches(handle)
        let support = Hwloc.support(handle)
        bindingSupported = isThisSystem && support.setThisThreadCPUBind
        bindingQuerySupported = isThisSystem && support.getThisThreadCPUBind
        memoryBindingSupported = isThisSystem && support.allocMembind
    }

    /// Groups cores into NUMA nodes so that every core lands in exactly one node.
    ///
    /// A core goes to the smallest node whose PUs contain it (the first on a
    /// tie), else to the first node it overlaps, else to the first node; nodes
    /// that end up without cores (memory-only nodes, or a second node sharing
    /// the same PUs, as with HBM) are dropped.
    private static func assembleNodes(_ handle: OpaquePointer) -> [NUMANode] {
        var coreObjects = Hwloc.objects(handle, .core)
        if coreObjects.isEmpty {
            // Some XML exports and platforms have PUs without Core parents: one core per PU.
            coreObjects = Hwloc.objects(handle, .processingUnit)
        }
        let nodeObjects = Hwloc.objects(handle, .numaNode).filter { !$0.cpuset.isEmpty }
        var owner = [Int?](repeating: nil, count: coreObjects.count)
        for (coreSlot, core) in coreObjects.enumerated() {
            // The smallest containing node: a memory-only node attached at the machine
            // level has every PU in its cpuset, but the cores belong to their package's node.
            let containing = nodeObjects.indices.filter { core.cpuset.isSubset(of: nodeObjects[$0].cpuset) }
            owner[coreSlot] = containing.min { nodeObjects[$0].cpuset.count < nodeObjects[$1].cpuset.count }
                ?? nodeObjects.firstIndex { !core.cpuset.intersection($0.cpuset).isEmpty }
                ?? (nodeObjects.isEmpty ? nil : 0)  // outside every node: should not happen; keep it usable
        }
        var nodes: [NUMANode] = []
        for (nodeSlot, node) in nodeObjects.enumerated() {
            let members = coreObjects.indices.filter { owner[$0] == nodeSlot }.map { coreObjects[$0] }
            guard !members.isEmpty else { continue }
            nodes.append(makeNode(
                index: node.logicalIndex, osIndex: node.osIndex,
                memoryBytes: node.localMemoryBytes, coreObjects: members))
        }
        if nodes.isEmpty {
            // No usable NUMA object: one node holding every PU and all memory.
            return [makeNode(
                index: 0, osIndex: 0, memoryBytes: Hwloc.totalMemoryBytes(handle), coreObjects: coreObjects)]
        }
        return nodes
    }

    /// Builds one node value from its core objects.
    private static func makeNode(
        index: Int, osIndex: Int, memoryBytes: Int, coreObjects: [Hwloc.Object]
    ) -> NUMANode {
        let cores = coreObjects.map {
            Core(index: $0.logicalIndex, osIndex: $0.osIndex, puOSIndices: $0.cpuset.puOSIndices)
        }
        let cpuset = coreObjects.reduce(CPUSet()) { $0.union($1.cpuset) }
        return NUMANode(index: index, osIndex: osIndex, cores: cores, memoryBytes: memoryBytes, cpuset: cpuset)
    }

    /// Reads L1d/L2/L3 sizes, filling gaps from `CacheInfo.fallback`.
    private static func readCaches(_ handle: OpaquePointer) -> CacheInfo {
        var sizes: [Int] = []
        var defaulted: [CacheLevel] = []
        for (level, cacheLevel) in zip(1...3, CacheLevel.allCases) {
            if let bytes = Hwloc.smallestCacheBytes(handle, level: level) {
                sizes.append(bytes)
            } else {
                sizes.append(CacheInfo.fallback.bytes(cacheLevel))
                defaulted.append(cacheLevel)
            }
        }
        return CacheInfo(l1dBytes: sizes[0], l2Bytes: sizes[1], l3Bytes: sizes[2], defaultedLevels: defaulted)
    }
}
