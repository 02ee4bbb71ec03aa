import Foundation
import MultiheadRuntime
import MultiheadTopology

/// An engine's policy applied to a topology: the worker groups and what the user should know.
struct EnginePlacement {
    /// The groups, their sizes and bindings.
    var layout: WorkerLayout
    /// The policy in force (`.none` when a lenient default fell back to it).
    var policy: Engine.Policy
    /// Why the layout is what it is, when that is not obvious (fallbacks, no binding support).
    var notes: [String]
}

extension Engine {
    /// Applies a policy to a topology.
    ///
    /// Thread counts: 0 means one per core of the policy's PUs; the threads are split between
    /// nodes in proportion to their PUs (`WorkerLayout.threadShares`). A group is bound to its
    /// node's PUs (within the policy's set) when the topology supports binding, except a single
    /// group spanning every PU of the machine, where binding would restrict nothing.
    ///
    /// - Parameters:
    ///   - topology: the machine (nil when hwloc could not read it).
    ///   - requested: the policy, or nil for the lenient default.
    ///   - threads: requested threads, at least 0.
    /// - Returns: the placement.
    /// - Throws: `MultiheadError.invalidArgument` for a negative thread count, a cpuset without
    ///   a PU of this machine, or more threads than the policy's PUs.
    static func placement(topology: Topology?, policy requested: Policy?, threads: Int) throws -> EnginePlacement {
        guard threads >= 0 else {
            throw MultiheadError.invalidArgument("threads must be >= 0 (0 = one per core), got \(threads)")
        }
        var notes: [String] = []
        guard let topology else {
            if case .cpuset = requested {
                throw MultiheadError.invalidArgument("policy cpuset needs the machine's topology, which hwloc could not read")
            }
            let count = threads == 0 ? max(1, ProcessInfo.processInfo.activeProcessorCount) : threads
            notes.append("hwloc could not read the topology: one unbound group")
            return EnginePlacement(layout: .unbound(threads: count), policy: .none, notes: notes)
        }
        var policy = requested ?? .distribute
        let allowed = try allowedPUs(topology, policy, notes: &notes)
        if case .none = policy {
            let count = threads == 0 ? max(1, topology.cores.count) : threads
            return EnginePlacement(layout: .unbound(threads: count), policy: .none, notes: notes)
        }
        let nodes = topology.numaNodes.map { (node: $0, pus: $0.cpuset.intersection(allowed)) }.filter { !$0.pus.isEmpty }
        let cores = nodes.reduce(0) { total, entry in
            total + entry.node.cores.filter { !CPUSet(puOSIndices: $0.puOSIndices).intersection(allowed).isEmpty }.count
        }
        let count = threads == 0 ? max(1, cores) : threads
        if count > allowed.count {
            guard requested == nil else {
                throw MultiheadError.invalidArgument(
                    "\(count) threads requested, but policy \(policy.name) binds threads to \(allowed.count) "
                        + "PU\(allowed.count == 1 ? "" : "s") (\(allowed)): ask for at most \(allowed.count), or use policy none")
            }
            notes.append("\(count) threads for \(allowed.count) PUs: not binding (policy none)")
            policy = .none
            return EnginePlacement(layout: .unbound(threads: count), policy: .none, notes: notes)
        }
        let shares = WorkerLayout.threadShares(count, weights: nodes.map(\.pus.count), capacities: nodes.map(\.pus.count))
        let bind = topology.bindingSupported
        if !bind { notes.append("threads are not bound: \(topology.bindingNote)") }
        var groups = zip(nodes, shares).filter { $0.1 > 0 }.map { entry, share in
            WorkerGroup(node: entry.node.index, threads: share, cpuset: bind ? entry.pus : nil)
        }
        if groups.count == 1, let set = groups[0].cpuset, set == topology.cpuset {
            groups[0].cpuset = nil
            notes.append("one group spanning every PU: its threads are left unbound")
        }
        return EnginePlacement(layout: WorkerLayout(groups: groups, topology: topology), policy: policy, notes: notes)
    }

    /// The PUs a policy allows on a topology.
    private static func allowedPUs(_ topology: Topology, _ policy: Policy, notes: inout [String]) throws -> CPUSet {
        switch policy {
        case .distribute, .none:
            return topology.cpuset
        case .isolate:
            let cpu = CurrentCPU.get()
            if let cpu, let node = topology.numaNodes.first(where: { $0.cpuset.contains(cpu) }) {
                notes.append("isolate: node \(node.index), where the creating thread ran (PU \(cpu))")
                return node.cpuset
            }
            notes.append("isolate: the creating thread's PU \(cpu.map(String.init) ?? "?") is in no node; using node 0")
            return topology.numaNodes[0].cpuset
        case .cpuset(let set):
            guard !set.isEmpty else {
                throw MultiheadError.invalidArgument("cpuset is empty: it must name at least one PU of this machine (\(topology.cpuset))")
            }
            let inside = set.intersection(topology.cpuset)
            guard inside == set else {
                let missing = CPUSet(puOSIndices: set.puOSIndices.filter { !topology.cpuset.contains($0) })
                throw MultiheadError.invalidArgument(
                    "cpuset \(set) names PU\(missing.count == 1 ? "" : "s") \(missing) that this machine does not have "
                        + "(its PUs are \(topology.cpuset))")
            }
            return set
        }
    }
}

extension Topology {
    /// Why binding does nothing here, for notes (empty when it works).
    var bindingNote: String {
        if bindingSupported { return "" }
        return isThisSystem ? "hwloc reports no thread binding support on this OS"
            : "the topology (\(source)) is not this system"
    }
}
