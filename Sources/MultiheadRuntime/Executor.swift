import Dispatch
import Foundation
import Synchronization

/// Runs a fixed number of independent tiles on a group of worker threads.
///
/// Tiles are handed out dynamically by an atomic counter, so uneven tiles balance themselves.
/// Callers must make every output element the product of exactly one tile: then results do not
/// depend on the thread count or on which worker ran which tile.
public final class Executor: @unchecked Sendable {
    /// Number of workers (the calling thread is one of them).
    public let threadCount: Int

    /// - Parameter threadCount: workers to use, at least 1.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// Calls `body(tile, worker)` once for every `tile` in `0..<tileCount`.
    ///
    /// `worker` is in `0..<threadCount` and no two concurrent calls share it, so it can index
    /// per-worker scratch. Returns when every tile has finished.
    /// - Parameter parallel: false runs every tile on the calling thread, for work too small to
    ///   pay for waking workers (the tiles, and so the results, are the same).
    public func run(tiles tileCount: Int, parallel: Bool = true, _ body: (_ tile: Int, _ worker: Int) -> Void) {
        guard tileCount > 0 else { return }
        let workers = parallel ? min(threadCount, tileCount) : 1
        if workers == 1 {
            for tile in 0..<tileCount { body(tile, 0) }
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let tile = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if tile >= tileCount { break }
                    body(tile, worker)
                }
            }
        }
    }
}
