/// One physical core and the PUs (hardware threads) it runs.
public struct Core: Hashable, Sendable, CustomStringConvertible {
    /// hwloc's logical index: dense, 0-based, in topology order.
    public let index: Int
    /// The OS's core number (Linux `core_id`, unique only within a package);
    /// -1 when unknown.
    public let osIndex: Int
    /// OS indices of this core's PUs, increasing.
    public let puOSIndices: [Int]

    public var description: String {
        "core \(index) (PUs \(CPUSet(puOSIndices: puOSIndices)))"
    }
}

/// One NUMA node: memory plus the cores closest to it.
///
/// A plain value copied out of hwloc at load; it holds no hwloc pointer.
public struct NUMANode: Hashable, Sendable, CustomStringConvertible {
    /// hwloc's logical index of the node; for the stand-in node of a machine
    /// without NUMA objects, 0.
    public let index: Int
    /// The OS's node number (Linux `nodeN`); -1 when unknown.
    public let osIndex: Int
    /// The cores of this node, in logical order. Each core of the topology
    /// belongs to exactly one node.
    public let cores: [Core]
    /// Local memory in bytes (0 when hwloc does not know it).
    public let memoryBytes: Int
    /// The PUs of `cores`.
    public let cpuset: CPUSet

    /// OS indices of the node's PUs, increasing.
    public var puOSIndices: [Int] { cpuset.puOSIndices }

    public var description: String {
        "NUMA node \(index) (os \(osIndex)): \(cores.count) cores, PUs \(cpuset), "
            + "\(ByteCountText.format(memoryBytes))"
    }
}

/// The cache levels `CacheInfo` reports.
public enum CacheLevel: String, Codable, Sendable, CaseIterable {
    case l1d, l2, l3
}

/// Data-cache sizes for kernel blocking.
///
/// Each size is the smallest hwloc cache object of that level (data or
/// unified), so blocks fit on every core. Levels hwloc does not report
/// (synthetic topologies without `l2:`-style levels, some VMs, CPUs without
/// L3) fall back to `CacheInfo.fallback` and are listed in `defaultedLevels`.
public struct CacheInfo: Codable, Hashable, Sendable {
    /// L1 data cache per core, bytes.
    public var l1dBytes: Int
    /// L2 cache, bytes.
    public var l2Bytes: Int
    /// L3 cache (per package or slice as hwloc reports it), bytes.
    public var l3Bytes: Int
    /// Levels that hwloc did not report and that hold the fallback size.
    public var defaultedLevels: [CacheLevel]

    /// 32 KiB L1d, 1 MiB L2, 32 MiB L3: a current x86 server core.
    public static let fallback = CacheInfo(
        l1dBytes: 32 << 10, l2Bytes: 1 << 20, l3Bytes: 32 << 20, defaultedLevels: CacheLevel.allCases)

    /// Creates cache sizes.
    ///
    /// - Parameters:
    ///   - l1dBytes: L1 data cache, bytes.
    ///   - l2Bytes: L2 cache, bytes.
    ///   - l3Bytes: L3 cache, bytes.
    ///   - defaultedLevels: levels whose size is a fallback, not measured.
    public init(l1dBytes: Int, l2Bytes: Int, l3Bytes: Int, defaultedLevels: [CacheLevel] = []) {
        self.l1dBytes = l1dBytes
        self.l2Bytes = l2Bytes
        self.l3Bytes = l3Bytes
        self.defaultedLevels = defaultedLevels
    }

    /// Size of one level.
    ///
    /// - Parameter level: the cache level.
    /// - Returns: its size in bytes.
    public func bytes(_ level: CacheLevel) -> Int {
        switch level {
        case .l1d: l1dBytes
        case .l2: l2Bytes
        case .l3: l3Bytes
        }
    }

    enum CodingKeys: String, CodingKey {
        case l1dBytes = "l1d_bytes", l2Bytes = "l2_bytes", l3Bytes = "l3_bytes"
        case defaultedLevels = "defaulted_levels"
    }
}

/// Byte counts as short human text ("32 KiB", "12.5 GiB").
enum ByteCountText {
    /// - Parameter bytes: a byte count.
    /// - Returns: the count in the largest binary unit that keeps it at least 1.
    static func format(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 || value == value.rounded() { return "\(Int(value)) \(units[unit])" }
        return "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
