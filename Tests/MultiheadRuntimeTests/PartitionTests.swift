import Synchronization
import XCTest
import MultiheadTopology
@testable import MultiheadRuntime

/// Splitting a phase's tiles between NUMA groups, on synthetic topologies.
final class PartitionTests: XCTestCase {
    /// One group per node of `topology`, one worker per core, unbound.
    private func layout(_ topology: Topology) -> WorkerLayout {
        WorkerLayout(groups: topology.numaNodes.map { WorkerGroup(node: $0.index, threads: $0.cores.count, cpuset: nil) },
                     topology: topology)
    }

    /// Every tile of every segment is owned by exactly one group, in adjacent ranges.
    private func assertCovers(_ layout: WorkerLayout, _ space: TileSpace, file: StaticString = #filePath, line: UInt = #line) {
        var owners = [Int](repeating: 0, count: space.count)
        for group in layout.groups.indices {
            for range in layout.tiles(of: group, in: space) { for tile in range { owners[tile] += 1 } }
        }
        XCTAssertEqual(owners, [Int](repeating: 1, count: space.count), "\(space)", file: file, line: line)
    }

    func testBatchRangesOnTwoNodes() throws {
        let layout = layout(try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1"))
        XCTAssertEqual(layout.groups.map(\.threads), [2, 2])
        let space = TileSpace(batches: 8, tilesPerBatch: 3)
        XCTAssertEqual(layout.tiles(of: 0, in: space), [0..<12])   // batches 0-3
        XCTAssertEqual(layout.tiles(of: 1, in: space), [12..<24])  // batches 4-7
        // One batch, fewer than the nodes: its tiles (heads x blocks) are split instead.
        XCTAssertEqual(layout.tiles(of: 0, in: TileSpace(batches: 1, tilesPerBatch: 12)), [0..<6])
        XCTAssertEqual(layout.tiles(of: 1, in: TileSpace(batches: 1, tilesPerBatch: 12)), [6..<12])
        assertCovers(layout, TileSpace(batches: 3, tilesPerBatch: 5))
    }

    func testBatchRangesOnFourNodes() throws {
        let layout = layout(try Topology.load(synthetic: "package:4 numa:1 core:1 pu:1"))
        XCTAssertEqual(layout.groups.count, 4)
        let space = TileSpace(batches: 8, tilesPerBatch: 2)
        XCTAssertEqual((0..<4).map { layout.tiles(of: $0, in: space) }, [[0..<4], [4..<8], [8..<12], [12..<16]])
        // Two batches over four nodes: each node takes half a batch.
        let two = TileSpace(batches: 2, tilesPerBatch: 4)
        XCTAssertEqual((0..<4).map { layout.tiles(of: $0, in: two) }, [[0..<2], [2..<4], [4..<6], [6..<8]])
        for (batches, perBatch) in [(0, 3), (1, 1), (3, 7), (5, 1), (13, 2)] {
            assertCovers(layout, TileSpace(batches: batches, tilesPerBatch: perBatch))
        }
    }

    func testUnevenNodesShareInProportionToThreads() throws {
        let topology = try Topology.load(xmlFile: try RuntimeTestSupport.unevenXML())
        let layout = layout(topology)
        XCTAssertEqual(layout.groups.map(\.threads), [3, 1])
        XCTAssertEqual(layout.tiles(of: 0, in: TileSpace(batches: 8, tilesPerBatch: 2)), [0..<12])  // batches 0-5
        XCTAssertEqual(layout.tiles(of: 1, in: TileSpace(batches: 8, tilesPerBatch: 2)), [12..<16]) // batches 6-7
        XCTAssertEqual(layout.tiles(of: 0, in: TileSpace(batches: 2, tilesPerBatch: 1)), [0..<1])
        for (batches, perBatch) in [(1, 10), (2, 3), (7, 4), (100, 1)] {
            assertCovers(layout, TileSpace(batches: batches, tilesPerBatch: perBatch))
        }
    }

    func testSegmentsAreSplitOneByOne() throws {
        let layout = WorkerLayout(groups: [WorkerGroup(node: 0, threads: 1, cpuset: nil),
                                           WorkerGroup(node: 1, threads: 1, cpuset: nil)], topology: nil)
        let space = TileSpace(segments: [.init(batches: 4, tilesPerBatch: 1), .init(batches: 4, tilesPerBatch: 2)])
        XCTAssertEqual(space.count, 12)
        XCTAssertEqual(layout.tiles(of: 0, in: space), [0..<2, 4..<8])
        XCTAssertEqual(layout.tiles(of: 1, in: space), [2..<4, 8..<12])
        assertCovers(layout, space)
    }

    func testThreadShares() {
        XCTAssertEqual(WorkerLayout.threadShares(4, weights: [3, 1]), [3, 1])
        XCTAssertEqual(WorkerLayout.threadShares(2, weights: [3, 1]), [1, 1])
        XCTAssertEqual(WorkerLayout.threadShares(8, weights: [3, 1]), [6, 2])
        XCTAssertEqual(WorkerLayout.threadShares(1, weights: [2, 2]), [1, 0])
        XCTAssertEqual(WorkerLayout.threadShares(5, weights: [2, 2], capacities: [2, 2]), [2, 2])
        XCTAssertEqual(WorkerLayout.threadShares(6, weights: [1, 1, 1, 1]), [2, 2, 1, 1])
    }

    /// On every backend and layout, each tile runs once, on a worker of the group that owns it.
    func testEveryTileRunsOnceOnItsGroup() throws {
        let topologies = [try Topology.load(synthetic: "package:2 numa:1 core:2 pu:1"),
                          try Topology.load(synthetic: "package:4 numa:1 core:1 pu:1"),
                          try Topology.load(xmlFile: try RuntimeTestSupport.unevenXML())]
        let spaces = [TileSpace(tiles: 1), TileSpace(batches: 1, tilesPerBatch: 9), TileSpace(batches: 3, tilesPerBatch: 4),
                      TileSpace(batches: 8, tilesPerBatch: 16),
                      TileSpace(segments: [.init(batches: 5, tilesPerBatch: 2), .init(batches: 5, tilesPerBatch: 3)])]
        for topology in topologies {
            let layout = layout(topology)
            for backend in ExecutorBackend.allCases {
                let executor = try Executor(layout: layout, backend: backend)
                for space in spaces {
                    let runs = RuntimeTestSupport.record(executor, space)
                    XCTAssertEqual(runs.map(\.count), [Int](repeating: 1, count: space.count), "\(backend) \(space)")
                    for group in layout.groups.indices {
                        for range in layout.tiles(of: group, in: space) {
                            for tile in range {
                                XCTAssertEqual(runs[tile].map { layout.group(ofWorker: $0) }, [group],
                                               "\(topology.source) \(backend) tile \(tile)")
                            }
                        }
                    }
                }
            }
        }
    }
}
