internal import CHwloc
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raw hwloc CPU- and memory-binding calls, in one place.
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
