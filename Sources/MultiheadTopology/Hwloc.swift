internal import CHwloc
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raw hwloc topology calls, in one place (swift-system style).
///
/// Nothing outside the `Hwloc*.swift` files calls hwloc. Callers get Swift
/// values (`Int`, `Bool`, `CPUSet`), never `hwloc_obj_t`. A topology handle is
/// an `OpaquePointer` owned by `Topology`, which destroys it in `deinit`.
enum Hwloc {
    /// The hwloc object kinds the module reads.
    enum Kind {
        case numaNode, core, processingUnit

        var rawType: hwloc_obj_type_t {
            switch self {
            case .numaNode: HWLOC_OBJ_NUMANODE
            case .core: HWLOC_OBJ_CORE
            case .processingUnit: HWLOC_OBJ_PU
            }
        }
    }

    /// One hwloc object, copied out of the topology.
    struct Object {
        /// hwloc's logical index (dense, 0-based per kind).
        var logicalIndex: Int
        /// The OS's index, or -1 when hwloc does not know it.
        var osIndex: Int
        /// The PUs under this object (a copy).
        var cpuset: CPUSet
        /// Local memory of a NUMA node in bytes; 0 for other kinds.
        var localMemoryBytes: Int
    }

    /// The `hwloc_topology_get_support` bits the module relies on.
    struct Support {
        var setThisThreadCPUBind: Bool
        var getThisThreadCPUBind: Bool
        var allocMembind: Bool
    }

    /// Version of the hwloc headers this module was built against.
    static let headerVersion: String = HWLOC_VERSION

    /// Creates and loads a topology.
    ///
    /// With neither `synthetic` nor `xmlFile`, hwloc itself honours
    /// `HWLOC_SYNTHETIC`, `HWLOC_XMLFILE` and `HWLOC_THISSYSTEM`.
    ///
    /// - Parameters:
    ///   - synthetic: a synthetic description, e.g. `"package:2 numa:1 core:2 pu:1"`.
    ///   - xmlFile: path of an hwloc XML export.
    ///   - isThisSystem: sets `HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM`.
    ///   - sourceName: how errors name the source.
    /// - Returns: a loaded topology the caller must `destroy`.
    /// - Throws: `TopologyError` naming the failing step and errno.
    static func createTopology(
        synthetic: String?, xmlFile: String?, isThisSystem: Bool, sourceName: String
    ) throws -> OpaquePointer {
        var handle: hwloc_topology_t?
        guard hwloc_topology_init(&handle) == 0, let topology = handle else {
            throw TopologyError.initializationFailed(errno: errno)
        }
        do {
            if let synthetic, hwloc_topology_set_synthetic(topology, synthetic) != 0 {
                throw TopologyError.invalidSyntheticDescription(synthetic, errno: errno)
            }
            if let xmlFile {
                // hwloc reports a missing file as a generic parse failure; say it plainly.
                guard access(xmlFile, R_OK) == 0 else {
                    throw TopologyError.xmlFileUnreadable(path: xmlFile, errno: errno)
                }
                if hwloc_topology_set_xml(topology, xmlFile) != 0 {
                    throw TopologyError.invalidXMLFile(path: xmlFile, errno: errno)
                }
            }
            if isThisSystem {
                let flag = HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM.rawValue
                if hwloc_topology_set_flags(topology, numericCast(flag)) != 0 {
                    throw TopologyError.loadFailed(source: sourceName, errno: errno)
                }
            }
            if hwloc_topology_load(topology) != 0 {
                throw TopologyError.loadFailed(source: sourceName, errno: errno)
            }
        } catch {
            hwloc_topology_destroy(topology)
            throw error
        }
        return topology
    }

    /// Destroys a topology made by `createTopology`.
    static func destroy(_ topology: OpaquePointer) {
        hwloc_topology_destroy(topology)
    }

    /// Copies out every object of one kind, in logical order.
    ///
    /// - Parameters:
    ///   - topology: a loaded topology.
    ///   - kind: which objects.
    /// - Returns: one `Object` per hwloc object.
    static func objects(_ topology: OpaquePointer, _ kind: Kind) -> [Object] {
        let count = Int(hwloc_get_nbobjs_by_type(topology, kind.rawType))
        guard count > 0 else { return [] }
        return (0..<count).compactMap { index in
            guard let object = hwloc_get_obj_by_type(topology, kind.rawType, UInt32(index)),
                  let cpuset = object.pointee.cpuset else { return nil }
            let os = object.pointee.os_index
            var memory = 0
            if kind == .numaNode, let attributes = object.pointee.attr {
                memory = Int(clamping: attributes.pointee.numanode.local_memory)
            }
            return Object(
                logicalIndex: Int(object.pointee.logical_index),
                osIndex: os == UInt32.max ? -1 : Int(os),
                cpuset: CPUSet(adopting: duplicateBitmap(cpuset)),
                localMemoryBytes: memory)
        }
    }

    /// The smallest data (or unified) cache size at one level.
    ///
    /// The smallest, not the first, so blocking sized from it fits every
    /// core of a heterogeneous machine.
    ///
    /// - Parameters:
    ///   - topology: a loaded topology.
    ///   - level: 1, 2 or 3.
    /// - Returns: bytes, or nil when hwloc has no such cache (e.g. synthetic).
    static func smallestCacheBytes(_ topology: OpaquePointer, level: Int) -> Int? {
        let type: hwloc_obj_type_t
        switch level {
        case 1: type = HWLOC_OBJ_L1CACHE
        case 2: type = HWLOC_OBJ_L2CACHE
        case 3: type = HWLOC_OBJ_L3CACHE
        default: return nil
        }
        var smallest: Int?
        for index in 0..<max(0, Int(hwloc_get_nbobjs_by_type(topology, type))) {
            guard let object = hwloc_get_obj_by_type(topology, type, UInt32(index)),
                  let cache = object.pointee.attr?.pointee.cache,
                  cache.type != HWLOC_OBJ_CACHE_INSTRUCTION, cache.size > 0 else { continue }
            smallest = min(smallest ?? Int.max, Int(clamping: cache.size))
        }
        return smallest
    }

    /// - Returns: the PUs of the whole topology (a copy).
    static func topologyCPUSet(_ topology: OpaquePointer) -> CPUSet {
        CPUSet(adopting: duplicateBitmap(hwloc_topology_get_topology_cpuset(topology)))
    }

    /// - Returns: the machine's total memory in bytes (root object).
    static func totalMemoryBytes(_ topology: OpaquePointer) -> Int {
        guard let root = hwloc_get_root_obj(topology) else { return 0 }
        return Int(clamping: root.pointee.total_memory)
    }

    /// - Returns: whether hwloc treats the topology as the running machine.
    static func isThisSystem(_ topology: OpaquePointer) -> Bool {
        hwloc_topology_is_thissystem(topology) != 0
    }

    /// - Returns: the binding support bits of a loaded topology.
    static func support(_ topology: OpaquePointer) -> Support {
        guard let support = hwloc_topology_get_support(topology)?.pointee else {
            return Support(setThisThreadCPUBind: false, getThisThreadCPUBind: false, allocMembind: false)
        }
        let cpubind = support.cpubind?.pointee
        let membind = support.membind?.pointee
        return Support(
            setThisThreadCPUBind: (cpubind?.set_thisthread_cpubind ?? 0) != 0,
            getThisThreadCPUBind: (cpubind?.get_thisthread_cpubind ?? 0) != 0,
            allocMembind: (membind?.alloc_membind ?? 0) != 0 && (membind?.bind_membind ?? 0) != 0)
    }
}

// MARK: CPU and memory binding

/// Raw hwloc CPU- and memory-binding calls.
///
/// All of these only read the topology, so hwloc allows them from many
/// threads at once on a loaded topology that nobody modifies.
extension Hwloc {
    /// Binds the calling thread (`HWLOC_CPUBIND_THREAD`).
    ///
    /// - Parameters:
    ///   - topology: a loaded topology.
    ///   - cpuset: the PUs the thread may run on.
    /// - Returns: 0 on success, else errno.
    static func bindThisThread(_ topology: OpaquePointer, to cpuset: OpaquePointer) -> Int32 {
        let flags = Int32(bitPattern: HWLOC_CPUBIND_THREAD.rawValue)
        return hwloc_set_cpubind(topology, cpuset, flags) == 0 ? 0 : errno
    }

    /// Binds the calling thread's future memory allocations to the NUMA nodes of `cpuset`
    /// (`hwloc_set_membind`, `HWLOC_MEMBIND_BIND`, `HWLOC_MEMBIND_THREAD`).
    ///
    /// - Returns: 0 on success, else errno.
    static func bindThisThreadMemory(_ topology: OpaquePointer, to cpuset: OpaquePointer) -> Int32 {
        let flags = Int32(bitPattern: HWLOC_MEMBIND_THREAD.rawValue)
        return hwloc_set_membind(topology, cpuset, HWLOC_MEMBIND_BIND, flags) == 0 ? 0 : errno
    }

    /// Reads the calling thread's binding (`HWLOC_CPUBIND_THREAD`).
    ///
    /// - Parameter topology: a loaded topology.
    /// - Returns: the binding, or errno on failure.
    static func thisThreadBinding(_ topology: OpaquePointer) -> Result<CPUSet, TopologyError> {
        let bitmap = allocateBitmap()
        let flags = Int32(bitPattern: HWLOC_CPUBIND_THREAD.rawValue)
        guard hwloc_get_cpubind(topology, bitmap, flags) == 0 else {
            let code = errno
            freeBitmap(bitmap)
            return .failure(.bindingQueryFailed(errno: code))
        }
        return .success(CPUSet(adopting: bitmap))
    }

    /// Allocates memory bound to one NUMA node, or plain memory.
    ///
    /// Binding is best effort (no `HWLOC_MEMBIND_STRICT`): if the kernel
    /// refuses `mbind`, hwloc returns unbound memory rather than nothing.
    /// Both paths return page-aligned memory that `free` releases.
    ///
    /// - Parameters:
    ///   - topology: a loaded topology.
    ///   - bytes: size, more than 0.
    ///   - numaLogicalIndex: hwloc logical index of the node, or nil for plain memory.
    ///   - numaOSIndex: the node's OS index, checked against the object found.
    /// - Returns: the memory, or nil when out of memory.
    static func allocate(
        _ topology: OpaquePointer, bytes: Int, numaLogicalIndex: Int?, numaOSIndex: Int
    ) -> UnsafeMutableRawPointer? {
        if let numaLogicalIndex, numaLogicalIndex >= 0,
           let node = hwloc_get_obj_by_type(topology, HWLOC_OBJ_NUMANODE, UInt32(numaLogicalIndex)),
           node.pointee.os_index == UInt32(truncatingIfNeeded: numaOSIndex),
           let nodeset = node.pointee.nodeset {
            let flags = Int32(bitPattern: HWLOC_MEMBIND_BYNODESET.rawValue)
            return hwloc_alloc_membind(topology, bytes, nodeset, HWLOC_MEMBIND_BIND, flags)
        }
        return hwloc_alloc(topology, bytes)
    }

    /// Releases memory from `allocate`.
    ///
    /// - Parameters:
    ///   - topology: the topology that allocated it.
    ///   - pointer: the memory.
    ///   - bytes: the size passed to `allocate`.
    static func free(_ topology: OpaquePointer, _ pointer: UnsafeMutableRawPointer, bytes: Int) {
        _ = hwloc_free(topology, pointer, bytes)
    }
}
