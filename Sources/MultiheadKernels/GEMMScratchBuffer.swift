/// A 64-byte-aligned float buffer that only grows; its owner frees it (`deallocate`).
///
/// 64 bytes: a packed panel row then starts a cache line, and zmm loads never split one.
struct GEMMScratchBuffer {
    private(set) var base: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    static let alignment = 64

    init(capacity: Int = 0) {
        self.capacity = Swift.max(capacity, 16)
        base = Self.allocate(self.capacity)
    }

    /// At least `count` floats (contents undefined after a growth).
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            UnsafeMutableRawPointer(base).deallocate()
            capacity = Swift.max(count, capacity * 2)
            base = Self.allocate(capacity)
        }
        return base
    }

    func deallocate() { UnsafeMutableRawPointer(base).deallocate() }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(
            byteCount: count * MemoryLayout<Float>.stride, alignment: alignment
        ).bindMemory(to: Float.self, capacity: count)
    }
}
