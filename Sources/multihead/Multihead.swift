import ArgumentParser
import Foundation
import Multihead

@main
struct MultiheadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "multihead",
        abstract: "Multi-head attention on the CPU with PyTorch's semantics.",
        subcommands: [Demo.self, Bench.self, TopologyCommand.self, Embed.self],
        defaultSubcommand: Demo.self)
}
