import Foundation
import MultiheadRuntime
import MultiheadTopology

extension Engine {
    /// Where an engine's worker threads may run.
    public enum Policy: Hashable, Sendable, CustomStringConvertible {
        /// Every NUMA node: one worker group per node, bound to its PUs, each owning a contiguous
        /// share of the batch. More threads than PUs is an error.
        case distribute
        /// Only the node of the thread that creates the engine. More threads than its PUs is an error.
        case isolate
        /// No binding: one group, the OS places the threads (any thread count).
        case none
        /// Only these PUs, grouped by the nodes they belong to. More threads than PUs is an error.
        case cpuset(CPUSet)

        /// Parses a policy name: `"distribute"`, `"isolate"`, `"none"`, or a PU list such as
        /// `"0-3,8"` (also written `"cpuset:0-3,8"`).
        ///
        /// - Parameter text: the name or list.
        /// - Throws: `MultiheadError.invalidArgument` for an unknown name or a malformed list.
        public init(parsing text: String) throws {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            switch trimmed.lowercased() {
            case "distribute": self = .distribute
            case "isolate": self = .isolate
            case "none": self = .none
            default:
                let list = trimmed.hasPrefix("cpuset:") ? String(trimmed.dropFirst("cpuset:".count)) : trimmed
                guard list.first.map({ $0.isNumber || $0 == " " }) ?? true else {
                    throw MultiheadError.invalidArgument(
                        "unknown policy \"\(text)\" (expected distribute, isolate, none or a PU list such as \"0-3\")")
                }
                self = .cpuset(try Engine.parseCPUSet(list))
            }
        }

        /// The policy's name: `distribute`, `isolate`, `none` or `cpuset`.
        public var name: String {
            switch self {
            case .distribute: "distribute"
            case .isolate: "isolate"
            case .none: "none"
            case .cpuset: "cpuset"
            }
        }

        public var description: String {
            if case .cpuset(let set) = self { return "cpuset \(set)" }
            return name
        }
    }

    /// How the worker threads are provided.
    public enum ExecutorKind: String, CaseIterable, Codable, Sendable {
        /// Persistent threads bound once, spinning ~50 us between jobs then sleeping (default).
        case pinned
        /// Dispatch's shared threads (`concurrentPerform`), bound for the length of each job.
        case dispatch
        /// Dispatch without NUMA groups, binding or placement: the executor before NUMA support,
        /// kept as the baseline for measurements. Ignores the policy.
        case plain

        /// The kind engines use when none is given: `$MULTIHEAD_EXECUTOR` (`pinned`, `dispatch`,
        /// `plain`; anything else is ignored), else `.pinned`, which measured fastest
        /// (`multihead-cli topology --fork-join`).
        public static var `default`: ExecutorKind {
            ProcessInfo.processInfo.environment["MULTIHEAD_EXECUTOR"].flatMap { ExecutorKind(rawValue: $0.lowercased()) }
                ?? .pinned
        }
    }

    /// How to build an engine.
    public struct Options: Sendable {
        /// Worker threads; 0 means one per core of the policy's PUs.
        public var threads: Int
        /// Where threads may run; nil is `.distribute`, except that asking for more threads than
        /// PUs then falls back to `.none` (no binding) instead of failing.
        public var policy: Policy?
        /// Pinned pool, Dispatch, or the plain pre-NUMA executor.
        public var executor: ExecutorKind
        /// Whether modules keep a copy of their packed weights on every node; nil mirrors when
        /// there is more than one node and the copies fit comfortably in the smallest node.
        public var mirrorWeights: Bool?
        /// The topology to place threads on; nil reads this machine with hwloc. A synthetic or
        /// XML topology plans for another machine (binding is then skipped, unless it was loaded
        /// with `isThisSystem: true`).
        public var topology: Topology?
        /// Bytes of scratch (projected queries, keys and values, attention output, packed keys
        /// and values) one attention call may use before it runs its heads in groups, each
        /// group's scratch within the limit (one head at least): nil is
        /// `Engine.defaultScratchLimit`, `Int.max` never groups. Grouping changes the rounding of
        /// the output projection's sum (one sum per group, added in order), never the semantics.
        public var scratchLimit: Int?

        /// - Parameters:
        ///   - threads: worker threads, 0 for one per core.
        ///   - policy: where threads may run (nil: distribute, lenient about the thread count).
        ///   - executor: the executor kind (default: `ExecutorKind.default`).
        ///   - mirrorWeights: nil for automatic.
        ///   - topology: nil for this machine.
        ///   - scratchLimit: bytes, nil for the default (see `scratchLimit`).
        public init(threads: Int = 0, policy: Policy? = nil, executor: ExecutorKind = .default,
                    mirrorWeights: Bool? = nil, topology: Topology? = nil, scratchLimit: Int? = nil) {
            self.threads = threads
            self.scratchLimit = scratchLimit
            self.policy = policy
            self.executor = executor
            self.mirrorWeights = mirrorWeights
            self.topology = topology
        }
    }

    /// Parses a PU list such as `"0-3,8"`.
    ///
    /// - Throws: `MultiheadError.invalidArgument` naming the bad item.
    static func parseCPUSet(_ list: String) throws -> CPUSet {
        do {
            return try CPUSet(parsing: list)
        } catch {
            throw MultiheadError.invalidArgument("cpuset: \(error)")
        }
    }
}
