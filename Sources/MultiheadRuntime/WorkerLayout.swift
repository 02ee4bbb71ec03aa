import MultiheadTopology
#if canImport(Glibc)
import Glibc
#endif

/// The workers of one NUMA node: how many, and the PUs they are bound to.
public struct WorkerGroup: Hashable, Sendable {
    /// hwloc logical index of the node, or nil when the group stands for the whole machine.
    public var node: Int?
    /// Number of workers, at least 1.
    public var threads: Int
    /// The PUs the group's threads are bound to; nil leaves them to the OS.
    public var cpuset: CPUSet?

    /// - Parameters:
    ///   - node: logical index of the NUMA node, or nil.
    ///   - threads: number of workers (clamped to at least 1).
    ///   - cpuset: PUs to bind the workers to, or nil for no binding.
    public init(node: Int?, threads: Int, cpuset: CPUSet?) {
        self.node = node
        self.threads = max(1, threads)
        self.cpuset = cpuset
    }
}

/// Which workers belong to which NUMA node, and how a phase's tiles are split between nodes.
///
/// Worker ids are contiguous per group: group 0 has workers `0..<t_0`, group 1 the next `t_1`,
/// and so on. When group 0 is unbound the calling thread is worker 0; otherwise every worker is a
/// bound thread of the executor and the caller only waits.
public struct WorkerLayout: Sendable {
    /// The groups, one per NUMA node used, in node order.
    public let groups: [WorkerGroup]
    /// The topology the cpusets refer to; binding needs it. Nil when no group is bound.
    public let topology: Topology?
    /// Total workers.
    public let threadCount: Int
    /// `firstWorkers[g]` = id of group `g`'s first worker; one more entry holds `threadCount`.
    private let firstWorkers: [Int]

    /// - Parameters:
    ///   - groups: at least one group (an empty list becomes one unbound worker).
    ///   - topology: the topology whose binding calls bind the groups' threads.
    public init(groups: [WorkerGroup], topology: Topology?) {
        let groups = groups.isEmpty ? [WorkerGroup(node: nil, threads: 1, cpuset: nil)] : groups
        self.groups = groups
        self.topology = topology
        var starts = [0]
        for group in groups { starts.append(starts.last! + group.threads) }
        firstWorkers = starts
        threadCount = starts.last!
    }

    /// One group of `threads` unbound workers: the plain, NUMA-unaware layout.
    public static func unbound(threads: Int) -> WorkerLayout {
        WorkerLayout(groups: [WorkerGroup(node: nil, threads: threads, cpuset: nil)], topology: nil)
    }

    /// Id of the first worker of `group`.
    public func firstWorker(of group: Int) -> Int { firstWorkers[group] }

    /// The worker ids of `group`.
    public func workers(of group: Int) -> Range<Int> { firstWorkers[group] ..< firstWorkers[group + 1] }

    /// The group a worker belongs to.
    ///
    /// - Parameter worker: a worker id in `0..<threadCount`.
    /// - Returns: an index into `groups`.
    public func group(ofWorker worker: Int) -> Int {
        var group = 0
        while group + 1 < groups.count, firstWorkers[group + 1] <= worker { group += 1 }
        return group
    }

    /// Whether the calling thread takes part as worker 0: only when group 0 is unbound, so that
    /// bound groups never run tiles on a thread outside their PUs.
    public var callerParticipates: Bool { groups[0].cpuset == nil }

    /// Whether any group binds its threads.
    public var isBound: Bool { groups.contains { $0.cpuset != nil } }

    /// Splits `threads` between nodes in proportion to `weights` (their PUs), capped by
    /// `capacities` (D'Hondt's method: each next thread goes to the node with the largest
    /// `weight / (given + 1)`, the lower index on a tie). With at least as many threads as nodes
    /// every node gets one first; with fewer, the first `threads` nodes get one each.
    ///
    /// - Parameters:
    ///   - threads: threads to place, at least 0.
    ///   - weights: one positive weight per node.
    ///   - capacities: the most threads a node may take, or nil for no cap.
    /// - Returns: threads per node, summing to `threads` unless the caps are smaller.
    public static func threadShares(_ threads: Int, weights: [Int], capacities: [Int]? = nil) -> [Int] {
        var shares = [Int](repeating: 0, count: weights.count)
        let cap = { (node: Int) in capacities?[node] ?? Int.max }
        var left = max(0, threads)
        for node in weights.indices where left > 0 && cap(node) > 0 {
            shares[node] = 1
            left -= 1
        }
        while left > 0 {
            var best: Int?
            for node in weights.indices where shares[node] < cap(node) {
                // weights[node] / (shares[node] + 1) > weights[best] / (shares[best] + 1), in integers.
                if let b = best, weights[node] * (shares[b] + 1) <= weights[b] * (shares[node] + 1) { continue }
                best = node
            }
            guard let chosen = best else { break }
            shares[chosen] += 1
            left -= 1
        }
        return shares
    }
}

/// The PU the calling thread runs on (`sched_getcpu`), or nil where the OS cannot say.
public enum CurrentCPU {
    private typealias SchedGetCPU = @convention(c) () -> Int32

    /// Looked up once: Swift's Glibc module hides `sched_getcpu` behind `_GNU_SOURCE`.
    private static let function: SchedGetCPU? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "sched_getcpu") else { return nil }
        return unsafeBitCast(symbol, to: SchedGetCPU.self)
    }()

    /// - Returns: the OS index of the current PU, or nil.
    public static func get() -> Int? {
        guard let function else { return nil }
        let cpu = function()
        return cpu >= 0 ? Int(cpu) : nil
    }
}
