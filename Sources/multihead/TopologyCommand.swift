import ArgumentParser
import Foundation
import Multihead

/// Prints the machine as the engine sees it.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topology", abstract: "Print NUMA nodes, cores, PUs and caches.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let engine = try Engine()
        guard let topology = engine.topology else {
            throw ValidationError("hwloc could not read this machine's topology")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(topology.summary), as: UTF8.self))
        } else {
            print(topology.describe())
            print("worker threads: \(engine.threadCount)")
        }
    }
}
