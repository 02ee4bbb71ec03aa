import Foundation
import MultiheadRuntime
import MultiheadTopology

/// What an engine is and, for a shape, which node and workers take which tiles.
///
/// JSON (`Engine.describeJSON`, `mh_engine_describe`, Python's `Engine.describe()`) has the keys
/// `topology`, `numa_nodes` (a list), `threads`, `policy`, `cpuset`, `executor`,
/// `mirror_weights`, `scratch_limit` (bytes; null: never groups heads), `caller_participates`,
/// `groups`, `notes` and `plan` (null without a shape).
public struct EngineDescription: Codable, Sendable {
    /// One worker group: a NUMA node's workers.
    public struct Group: Codable, Sendable {
        /// hwloc logical index of the node; nil for a group standing for the whole machine.
        public var node: Int?
        /// Worker ids, contiguous.
        public var workers: [Int]
        /// The PUs the workers are bound to; nil when unbound.
        public var cpuset: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(node, forKey: .node)   // null rather than absent
            try c.encode(workers, forKey: .workers)
            try c.encode(cpuset, forKey: .cpuset)
        }
    }

    /// The tiles one group takes in one phase.
    public struct Assignment: Codable, Sendable {
        /// The group's node (nil: the whole machine, or the calling thread alone).
        public var node: Int?
        public var workers: [Int]
        /// Per segment, the flat tile range `[first, end)`.
        public var tiles: [[Int]]
        /// Per segment, the batches those tiles touch, `[first, end)`.
        public var batches: [[Int]]

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(node, forKey: .node)
            try c.encode(workers, forKey: .workers)
            try c.encode(tiles, forKey: .tiles)
            try c.encode(batches, forKey: .batches)
        }
    }

    /// One phase of a forward call.
    public struct Phase: Codable, Sendable {
        public var name: String
        public var segments: [String]
        public var tiles: Int
        /// False when the phase runs on the calling thread alone.
        public var parallel: Bool
        public var assignments: [Assignment]
    }

    /// The plan for one shape.
    public struct Plan: Codable, Sendable {
        public var shape: PlanShape
        /// Heads each group runs (`heads` unless the scratch limit splits them).
        public var headsPerGroup: Int
        /// Groups run in turn, each through every phase.
        public var headGroups: Int
        /// The phases of one group.
        public var phases: [Phase]

        enum CodingKeys: String, CodingKey {
            case shape, headsPerGroup = "heads_per_group", headGroups = "head_groups", phases
        }
    }

    public var topology: TopologySummary?
    public var numaNodes: [TopologySummary.Node]
    public var threads: Int
    public var policy: String
    public var cpuset: String?
    public var executor: String
    public var mirrorWeights: Bool
    /// `Engine.scratchLimit`; nil when unlimited.
    public var scratchLimit: Int?
    public var callerParticipates: Bool
    public var groups: [Group]
    public var notes: [String]
    public var plan: Plan?

    enum CodingKeys: String, CodingKey {
        case topology, numaNodes = "numa_nodes", threads, policy, cpuset, executor, mirrorWeights = "mirror_weights"
        case scratchLimit = "scratch_limit"
        case callerParticipates = "caller_participates", groups, notes, plan
    }

    /// Every key is written, absent values as null.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(topology, forKey: .topology)
        try c.encode(numaNodes, forKey: .numaNodes)
        try c.encode(threads, forKey: .threads)
        try c.encode(policy, forKey: .policy)
        try c.encode(cpuset, forKey: .cpuset)
        try c.encode(executor, forKey: .executor)
        try c.encode(mirrorWeights, forKey: .mirrorWeights)
        try c.encode(scratchLimit, forKey: .scratchLimit)
        try c.encode(callerParticipates, forKey: .callerParticipates)
        try c.encode(groups, forKey: .groups)
        try c.encode(notes, forKey: .notes)
        try c.encode(plan, forKey: .plan)
    }
}

extension Engine {
    /// Describes the engine and, given a shape, the plan of a forward call of that shape.
    ///
    /// - Parameter shape: the call to plan, or nil for the engine alone.
    /// - Returns: the description.
    public func describe(shape: PlanShape? = nil) -> EngineDescription {
        let layout = executor.layout
        var cpuset: String?
        if case .cpuset(let set) = policy { cpuset = set.description }
        let groups = layout.groups.indices.map { g in
            EngineDescription.Group(node: layout.groups[g].node, workers: Array(layout.workers(of: g)),
                                    cpuset: layout.groups[g].cpuset?.description)
        }
        return EngineDescription(
            topology: topology?.summary, numaNodes: topology?.summary.numaNodes ?? [], threads: threadCount,
            policy: policy.name, cpuset: cpuset, executor: executorKind.rawValue, mirrorWeights: mirrorsWeights,
            scratchLimit: scratchLimit == Int.max ? nil : scratchLimit, callerParticipates: layout.callerParticipates, groups: groups, notes: notes,
            plan: shape.map { plan(for: $0) })
    }

    /// `describe(shape:)` as JSON text (sorted keys).
    ///
    /// - Parameters:
    ///   - shape: the call to plan, or nil.
    ///   - pretty: indent the JSON.
    /// - Returns: the JSON.
    public func describeJSON(shape: PlanShape? = nil, pretty: Bool = false) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        guard let data = try? encoder.encode(describe(shape: shape)) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    private func plan(for shape: PlanShape) -> EngineDescription.Plan {
        let layout = executor.layout
        let phases = shape.phases(threads: threadCount, scratchLimit: scratchLimit).map { phase -> EngineDescription.Phase in
            let space = phase.space
            // Serial phases, and everything on a single-worker engine that includes the caller,
            // run on the calling thread as worker 0.
            let onCaller = !phase.parallel || (threadCount == 1 && layout.callerParticipates)
            let groups = onCaller ? [nil] : layout.groups.indices.map { Optional($0) }
            let assignments = groups.map { group -> EngineDescription.Assignment in
                let ranges = (0..<space.segmentCount).map { s -> Range<Int> in
                    guard let group else {
                        let offset = (0..<s).reduce(0) { $0 + space.segment($1).count }
                        return offset ..< offset + space.segment(s).count
                    }
                    return layout.tiles(of: group, in: space, segment: s)
                }
                let batches = ranges.enumerated().map { s, range -> [Int] in
                    let offset = (0..<s).reduce(0) { $0 + space.segment($1).count }
                    let perBatch = max(1, space.segment(s).tilesPerBatch)
                    guard !range.isEmpty else { return [0, 0] }
                    return [(range.lowerBound - offset) / perBatch, (range.upperBound - offset + perBatch - 1) / perBatch]
                }
                return EngineDescription.Assignment(
                    node: group.flatMap { layout.groups[$0].node }, workers: group.map { Array(layout.workers(of: $0)) } ?? [0],
                    tiles: ranges.map { [$0.lowerBound, $0.upperBound] }, batches: batches)
            }
            return EngineDescription.Phase(name: phase.name, segments: phase.segmentNames, tiles: space.count,
                                           parallel: !onCaller, assignments: assignments)
        }
        let group = shape.headsPerGroup(scratchLimit: scratchLimit)
        return EngineDescription.Plan(shape: shape, headsPerGroup: group, headGroups: (shape.heads + group - 1) / group,
                                      phases: phases)
    }
}
