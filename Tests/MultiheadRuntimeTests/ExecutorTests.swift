import Synchronization
import XCTest
@testable import MultiheadRuntime

final class ExecutorTests: XCTestCase {
    /// Every tile runs exactly once, with worker ids in range, whatever the thread count.
    func testEveryTileRunsOnce() {
        for threads in [1, 2, 3, 8] {
            let executor = Executor(threadCount: threads)
            for tiles in [0, 1, 5, 100] {
                let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(tiles, 1))
                counts.initialize(repeating: 0)
                let badWorker = Atomic<Bool>(false)
                executor.run(tiles: tiles) { tile, worker in
                    counts[tile] += 1
                    if worker < 0 || worker >= threads { badWorker.store(true, ordering: .relaxed) }
                }
                XCTAssertEqual(Array(counts.prefix(tiles)), [Int](repeating: 1, count: tiles), "threads \(threads), tiles \(tiles)")
                XCTAssertFalse(badWorker.load(ordering: .relaxed))
                counts.deallocate()
            }
        }
    }
}
