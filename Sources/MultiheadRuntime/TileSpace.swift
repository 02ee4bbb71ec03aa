/// The tiles of one parallel phase, numbered `0..<count`, with the batch structure that decides
/// which NUMA node owns which tile.
///
/// A phase is one or more segments laid end to end (a forward's input projections are one
/// segment per projection, for example). Inside a segment tiles are batch-major: tile
/// `offset + n * tilesPerBatch + i` belongs to batch `n`. Ownership is decided per segment, so
/// every segment is split across the nodes the same way (see `WorkerLayout.tiles(of:in:segment:)`).
public struct TileSpace: Hashable, Sendable {
    /// `batches` batches of `tilesPerBatch` tiles each.
    public struct Segment: Hashable, Sendable {
        /// Number of batches, at least 0.
        public var batches: Int
        /// Tiles per batch, at least 0.
        public var tilesPerBatch: Int

        /// - Parameters:
        ///   - batches: number of batches (negative counts as 0).
        ///   - tilesPerBatch: tiles of each batch (negative counts as 0); `batches * tilesPerBatch`
        ///     must fit in `Int`.
        public init(batches: Int, tilesPerBatch: Int) {
            self.batches = max(0, batches)
            self.tilesPerBatch = max(0, tilesPerBatch)
        }

        /// Number of tiles in the segment.
        public var count: Int { batches * tilesPerBatch }
    }

    /// The first segment; kept apart so that a one-segment space allocates nothing.
    private let first: Segment
    /// The other segments, in tile order.
    private let rest: [Segment]

    /// A one-segment space: `batches` batches of `tilesPerBatch` tiles.
    ///
    /// - Parameters:
    ///   - batches: number of batches.
    ///   - tilesPerBatch: tiles of each batch.
    public init(batches: Int, tilesPerBatch: Int) {
        first = Segment(batches: batches, tilesPerBatch: tilesPerBatch)
        rest = []
    }

    /// A space without batch structure: each tile is its own unit, split contiguously.
    ///
    /// - Parameter tiles: number of tiles.
    public init(tiles: Int) {
        self.init(batches: tiles, tilesPerBatch: 1)
    }

    /// A space made of segments laid end to end.
    ///
    /// - Parameter segments: the segments in tile order; empty means no tile.
    public init(segments: [Segment]) {
        first = segments.first ?? Segment(batches: 0, tilesPerBatch: 0)
        rest = Array(segments.dropFirst())
    }

    /// Number of segments (at least 1; an empty space has one empty segment).
    public var segmentCount: Int { 1 + rest.count }

    /// The segment at `index`, in `0..<segmentCount`.
    public func segment(_ index: Int) -> Segment {
        index == 0 ? first : rest[index - 1]
    }

    /// The segments in tile order.
    public var segments: [Segment] { [first] + rest }

    /// Total number of tiles.
    public var count: Int { rest.reduce(first.count) { $0 + $1.count } }
}

extension WorkerLayout {
    /// The flat tiles of one segment that `group` owns.
    ///
    /// The rule, per segment of `B` batches of `P` tiles, with `T` workers of which `t_g` in
    /// group `g` and `c_g` in the groups before it:
    /// - `B >= groups`: group `g` owns batches `floor(B * c_g / T) ..< floor(B * (c_g + t_g) / T)`,
    ///   whole batches in proportion to its threads;
    /// - `B < groups` (one long sequence on a multi-node machine): the `B * P` tiles themselves
    ///   are split in that proportion, so a batch is shared by heads, then query blocks.
    /// Ranges of consecutive groups are adjacent and cover the segment exactly once.
    ///
    /// - Parameters:
    ///   - group: index into `groups`.
    ///   - space: the phase.
    ///   - segment: index of the segment, in `0..<space.segmentCount`.
    /// - Returns: a range of flat tile indices (possibly empty).
    public func tiles(of group: Int, in space: TileSpace, segment: Int) -> Range<Int> {
        var offset = 0
        for s in 0..<segment { offset += space.segment(s).count }
        let seg = space.segment(segment)
        let byBatch = seg.batches >= groups.count
        let units = byBatch ? seg.batches : seg.count
        let unitSize = byBatch ? seg.tilesPerBatch : 1
        let lower = Self.share(units, of: firstWorker(of: group), threadCount)
        let upper = Self.share(units, of: firstWorker(of: group) + groups[group].threads, threadCount)
        return offset + lower * unitSize ..< offset + upper * unitSize
    }

    /// Every tile `group` owns in `space`, segment by segment.
    public func tiles(of group: Int, in space: TileSpace) -> [Range<Int>] {
        (0..<space.segmentCount).map { tiles(of: group, in: space, segment: $0) }
    }

    /// Number of tiles `group` owns in `space`.
    public func tileCount(of group: Int, in space: TileSpace) -> Int {
        var total = 0
        for s in 0..<space.segmentCount { total += tiles(of: group, in: space, segment: s).count }
        return total
    }

    /// `floor(units * numerator / denominator)` without overflow (`numerator <= denominator`).
    static func share(_ units: Int, of numerator: Int, _ denominator: Int) -> Int {
        guard denominator > 0 else { return 0 }
        let product = units.multipliedFullWidth(by: numerator)
        return denominator.dividingFullWidth(product).quotient
    }
}

/// Walks the tiles a group owns as its shared counter hands out positions `0, 1, 2, ...`.
///
/// Each worker keeps its own cursor; the positions one worker receives only grow, so the cursor
/// moves forward through the segments and maps a position to a flat tile in O(1) amortised.
struct GroupCursor {
    private let layout: WorkerLayout
    private let space: TileSpace
    private let group: Int
    private var segment = 0
    private var range: Range<Int>
    /// Positions that belong to the segments before `segment`.
    private var base = 0

    init(layout: WorkerLayout, space: TileSpace, group: Int) {
        self.layout = layout
        self.space = space
        self.group = group
        range = layout.tiles(of: group, in: space, segment: 0)
    }

    /// The flat tile at `position` of the group's sequence, or nil past its end.
    mutating func tile(at position: Int) -> Int? {
        while position - base >= range.count {
            base += range.count
            segment += 1
            guard segment < space.segmentCount else { return nil }
            range = layout.tiles(of: group, in: space, segment: segment)
        }
        return range.lowerBound + (position - base)
    }
}
