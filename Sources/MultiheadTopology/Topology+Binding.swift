/// What `Topology.bindCurrentThread(to:)` actually did.
public enum BindResult: Hashable, Sendable, CustomStringConvertible {
    /// The thread is now bound: the OS will only run it on the requested PUs.
    case bound
    /// Nothing happened, and the reason why. Not an error: a synthetic or XML
    /// topology (or an OS without thread binding) can still drive
    /// partitioning, it just cannot pin threads.
    case unsupported(reason: String)

    /// Whether the thread was really bound.
    public var isBound: Bool { self == .bound }

    public var description: String {
        switch self {
        case .bound: "bound"
        case .unsupported(let reason): "not bound: \(reason)"
        }
    }
}

extension Topology {
    /// Why binding does nothing on this topology, or nil when it works.
    var bindingUnsupportedReason: String? {
        if bindingSupported { return nil }
        if !isThisSystem {
            return "the topology (\(source)) is not this system; "
                + "load it with isThisSystem: true if its PUs exist here"
        }
        return "hwloc reports no thread binding support (set_thisthread_cpubind) on this OS"
    }

    /// Binds the calling thread to a set of PUs (`HWLOC_CPUBIND_THREAD`).
    ///
    /// On a topology without binding support (see `bindingSupported`)
    /// nothing happens and the result says so, instead of hwloc's silent
    /// success on synthetic topologies.
    ///
    /// - Parameter cpuset: the PUs the thread may run on; not empty, and
    ///   inside the topology's `cpuset`.
    /// - Returns: `.bound`, or `.unsupported(reason:)` when nothing was done.
    /// - Throws: `TopologyError.emptyCPUSet`, `.cpuSetOutsideTopology`, or
    ///   `.bindingFailed` when the OS refuses (e.g. PUs outside the cgroup).
    public func bindCurrentThread(to cpuset: CPUSet) throws -> BindResult {
        guard !cpuset.isEmpty else { throw TopologyError.emptyCPUSet }
        guard cpuset.isSubset(of: self.cpuset) else {
            throw TopologyError.cpuSetOutsideTopology(
                requested: cpuset.description, available: self.cpuset.description)
        }
        if let reason = bindingUnsupportedReason { return .unsupported(reason: reason) }
        let code = Hwloc.bindThisThread(handle, to: cpuset.bitmap)
        guard code == 0 else {
            throw TopologyError.bindingFailed(cpuset: cpuset.description, errno: code)
        }
        return .bound
    }

    /// Binds the memory the calling thread allocates and first touches from now on to the NUMA
    /// nodes of `cpuset`, so that a worker's scratch lands on its own node whoever frees it.
    ///
    /// - Parameter cpuset: the PUs whose nodes take the memory; not empty, inside `cpuset`.
    /// - Returns: `.bound`, or `.unsupported(reason:)` when this topology cannot bind memory.
    /// - Throws: `TopologyError.emptyCPUSet`, `.cpuSetOutsideTopology`, or `.bindingFailed`.
    public func bindCurrentThreadMemory(to cpuset: CPUSet) throws -> BindResult {
        guard !cpuset.isEmpty else { throw TopologyError.emptyCPUSet }
        guard cpuset.isSubset(of: self.cpuset) else {
            throw TopologyError.cpuSetOutsideTopology(requested: cpuset.description, available: self.cpuset.description)
        }
        guard memoryBindingSupported else {
            return .unsupported(reason: "this topology cannot bind memory (\(source))")
        }
        let code = Hwloc.bindThisThreadMemory(handle, to: cpuset.bitmap)
        guard code == 0 else { throw TopologyError.bindingFailed(cpuset: cpuset.description, errno: code) }
        return .bound
    }

    /// Binds the calling thread to the PUs of one NUMA node.
    ///
    /// - Parameter node: a node of this topology.
    /// - Returns: as `bindCurrentThread(to:)`.
    /// - Throws: as `bindCurrentThread(to:)`.
    public func bindCurrentThread(to node: NUMANode) throws -> BindResult {
        try bindCurrentThread(to: node.cpuset)
    }

    /// The PUs the calling thread may currently run on.
    ///
    /// Use it to restore a thread's binding after `bindCurrentThread(to:)`.
    ///
    /// - Returns: the binding, or nil when this topology cannot query it
    ///   (not this system, or no OS support).
    /// - Throws: `TopologyError.bindingQueryFailed` when the OS call fails.
    public func currentThreadBinding() throws -> CPUSet? {
        guard bindingQuerySupported else { return nil }
        return try Hwloc.thisThreadBinding(handle).get()
    }

    /// Allocates memory on one NUMA node (`hwloc_alloc_membind`, `HWLOC_MEMBIND_BIND`).
    ///
    /// Node-local scratch keeps a node's workers off the interconnect. When
    /// `memoryBindingSupported` is false (synthetic / XML topologies, or no
    /// OS support) the memory is plain page-aligned memory instead. Binding
    /// is best effort: if the kernel refuses, hwloc returns unbound memory.
    /// The memory is page aligned. Release it with `freeMembind(_:bytes:)`
    /// on the same topology, never with `free`.
    ///
    /// - Parameters:
    ///   - bytes: size in bytes, more than 0.
    ///   - node: a node of this topology (from `numaNodes`).
    /// - Returns: the memory, or nil when out of memory.
    public func allocateMembind(bytes: Int, node: NUMANode) -> UnsafeMutableRawPointer? {
        precondition(bytes > 0, "allocateMembind needs a positive size, got \(bytes)")
        return Hwloc.allocate(
            handle, bytes: bytes,
            numaLogicalIndex: memoryBindingSupported ? node.index : nil, numaOSIndex: node.osIndex)
    }

    /// Releases memory from `allocateMembind(bytes:node:)`.
    ///
    /// - Parameters:
    ///   - pointer: the memory.
    ///   - bytes: the size it was allocated with.
    public func freeMembind(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        Hwloc.free(handle, pointer, bytes: bytes)
    }
}
