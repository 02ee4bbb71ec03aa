import ArgumentParser
import Foundation
import Multihead
import MultiheadTopology

/// Prints the machine as the engine sees it and, for a shape, which node and threads take which
/// tiles; `--fork-join` measures the executors instead.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Print NUMA nodes, cores, PUs, caches and the engine's plan for a shape.",
        discussion: """
            Examples:
              multihead-cli topology --batch 8 --heads 12 --seq 128
              multihead-cli topology --synthetic "package:2 numa:1 core:4 pu:2" --batch 8 --heads 12 --seq 128 --json
              multihead-cli topology --fork-join
            """)

    @Flag(help: "Print JSON (keys numa_nodes, threads, plan, ...).")
    var json = false

    @Option(help: "Worker threads (0 = one per core of the policy's PUs).")
    var threads = 0

    @Option(help: "Thread policy: distribute, isolate, none, or a PU list such as 0-3,8 (default: distribute).")
    var policy: String?

    @Option(help: "Executor: pinned, dispatch or plain (default: $MULTIHEAD_EXECUTOR, else pinned).")
    var executor: String?

    @Option(help: "Plan on an hwloc synthetic topology instead of this machine, e.g. \"package:2 numa:1 core:2 pu:1\".")
    var synthetic: String?

    @Option(help: "Plan on an hwloc XML topology (lstopo file.xml) instead of this machine.")
    var xml: String?

    @Option(help: "Batch size N of the shape to plan.") var batch: Int?
    @Option(help: "Heads H of the shape to plan.") var heads: Int?
    @Option(help: "Query length L of the shape to plan.") var seq: Int?
    @Option(help: "Key/value length S (default: L).") var source: Int?
    @Option(help: "Embedding size E (default: 64 x H).") var embed: Int?
    @Flag(help: "Plan with attention weights.") var needWeights = false

    @Flag(help: "Measure one fork/join of each executor (plain Dispatch, NUMA Dispatch, pinned pool).")
    var forkJoin = false

    @Option(help: "Fork/joins per measurement.") var iterations = 20_000

    func run() throws {
        if forkJoin { return try measureForkJoin() }
        let engine = try makeEngine(executor.map(parseExecutor) ?? .default)
        let shape = try planShape()
        if json {
            print(engine.describeJSON(shape: shape, pretty: true))
            return
        }
        if let topology = engine.topology { print(topology.describe()) }
        print(Self.text(engine.describe(shape: shape)))
    }

    private func makeEngine(_ kind: Engine.ExecutorKind) throws -> Engine {
        var options = Engine.Options(threads: threads, executor: kind)
        options.policy = try policy.map { try Engine.Policy(parsing: $0) }
        if let synthetic { options.topology = try Topology.load(synthetic: synthetic) }
        if let xml { options.topology = try Topology.load(xmlFile: xml) }
        return try Engine(options: options)
    }

    private func parseExecutor(_ text: String) throws -> Engine.ExecutorKind {
        guard let kind = Engine.ExecutorKind(rawValue: text.lowercased()) else {
            throw ValidationError("unknown executor \"\(text)\" (expected pinned, dispatch or plain)")
        }
        return kind
    }

    private func planShape() throws -> PlanShape? {
        guard batch != nil || heads != nil || seq != nil else { return nil }
        guard let batch, let heads, let seq else { throw ValidationError("a plan needs --batch, --heads and --seq") }
        return try PlanShape(batch: batch, heads: heads, seqLen: seq, sourceLen: source, embedDim: embed, needWeights: needWeights)
    }

    /// Prints median / mean / p99 / p99.9 of one fork/join for each executor, back to back and
    /// after an idle gap longer than the pool's spin.
    private func measureForkJoin() throws {
        var results: [Engine.ForkJoinTiming] = []
        for (idle, everyWorker) in [(0, false), (0, true), (200, true)] {
            for kind in Engine.ExecutorKind.allCases {
                let engine = try makeEngine(kind)
                results.append(engine.measureForkJoin(iterations: idle == 0 ? iterations : max(1, iterations / 20),
                                                      idleMicroseconds: idle, everyWorker: everyWorker))
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        print("one fork/join, microseconds (\(results.first?.threads ?? 0) workers; every_worker: each tile waits for all workers)")
        print("executor   every_worker  idle_us  iterations    median      mean       p99     p99.9")
        for r in results {
            print(r.executor.padding(toLength: 10, withPad: " ", startingAt: 0) + (r.everyWorker ? " yes         " : " no          ")
                + String(format: " %7d %11d %9.2f %9.2f %9.2f %9.2f", r.idleMicroseconds, r.iterations, r.median, r.mean, r.p99, r.p999))
        }
    }

    /// The description as text: groups, notes, then each phase's tiles per node.
    static func text(_ d: EngineDescription) -> String {
        func list(_ ids: [Int]) -> String { ids.count > 1 ? "\(ids[0])-\(ids[ids.count - 1])" : ids.map(String.init).joined() }
        func workers(_ ids: [Int]) -> String { "worker\(ids.count == 1 ? "" : "s") \(list(ids))" }
        var lines = ["engine: \(d.threads) worker thread\(d.threads == 1 ? "" : "s"), policy \(d.policy)"
            + (d.cpuset.map { " \($0)" } ?? "") + ", executor \(d.executor), weights mirrored per node: \(d.mirrorWeights ? "yes" : "no")"]
        for group in d.groups {
            let caller = d.callerParticipates && group.workers.first == 0 ? " (worker 0 is the calling thread)" : ""
            lines.append("  " + (group.node.map { "node \($0)" } ?? "machine") + ": \(workers(group.workers))\(caller), "
                + (group.cpuset.map { "bound to PUs \($0)" } ?? "unbound"))
        }
        lines += d.notes.map { "  note: \($0)" }
        guard let plan = d.plan else { return lines.joined(separator: "\n") }
        let s = plan.shape
        lines.append("plan for N=\(s.batch) H=\(s.heads) L=\(s.seqLen) S=\(s.sourceLen) E=\(s.embedDim)"
            + (s.needWeights ? " need_weights" : "") + ":")
        for phase in plan.phases {
            lines.append("  \(phase.name) (\(phase.segments.joined(separator: ", ")); \(phase.tiles) tiles)"
                + (phase.parallel ? ":" : ": on the calling thread (too little work to wake workers)"))
            for a in phase.assignments where phase.parallel {
                let parts = zip(a.tiles, a.batches).enumerated().map { s, pair in
                    let (t, b) = pair
                    let name = phase.segments.count > 1 ? "\(phase.segments[s]) " : ""
                    return t[0] == t[1] ? "\(name)none" : "\(name)tiles \(t[0])-\(t[1] - 1) (batch\(b[1] - b[0] > 1 ? "es" : "") \(list(Array(b[0]..<b[1]))))"
                }
                lines.append("    " + (a.node.map { "node \($0)" } ?? "machine") + ", \(workers(a.workers)): " + parts.joined(separator: "; "))
            }
        }
        return lines.joined(separator: "\n")
    }
}
