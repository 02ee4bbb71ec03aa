/// A set of processing units (PUs), named by their OS indices.
///
/// Owns an hwloc bitmap and frees it in `deinit`. A `CPUSet` never changes
/// after creation (operations return new sets), which is why it is
/// `Sendable`: concurrent reads of an hwloc bitmap are safe.
///
/// Text form is the Linux / hwloc list syntax: `"0-3,6"`.
public final class CPUSet: @unchecked Sendable {
    /// Largest PU index accepted, so a typo such as `"0-4000000000"` cannot
    /// allocate a 500 MB bitmap. Linux supports at most 8192 CPUs today.
    public static let maximumIndex = (1 << 20) - 1

    /// The owned `hwloc_bitmap_t`.
    let bitmap: OpaquePointer

    /// Takes ownership of a bitmap made by `Hwloc.allocateBitmap` or `duplicateBitmap`.
    init(adopting bitmap: OpaquePointer) {
        self.bitmap = bitmap
    }

    deinit {
        Hwloc.freeBitmap(bitmap)
    }

    /// Creates an empty set.
    public convenience init() {
        self.init(adopting: Hwloc.allocateBitmap())
    }

    /// Creates a set holding the given PUs.
    ///
    /// - Parameter puOSIndices: OS indices of PUs, each in `0...maximumIndex`;
    ///   order and duplicates do not matter.
    public convenience init<Indices: Sequence<Int>>(puOSIndices: Indices) {
        let bitmap = Hwloc.allocateBitmap()
        for index in puOSIndices {
            precondition((0...Self.maximumIndex).contains(index), "PU index \(index) out of range")
            Hwloc.setRange(bitmap, index, index)
        }
        self.init(adopting: bitmap)
    }

    /// Parses a CPU list such as `"0-3,6"` (the `description` format).
    ///
    /// Items are single indices or inclusive ranges `first-last`, separated by
    /// commas; spaces around numbers are allowed; `""` is the empty set.
    /// Stricter than `hwloc_bitmap_list_sscanf`, which accepts `"0x3"` and `"3-1"`.
    ///
    /// - Parameter list: the text to parse.
    /// - Throws: `TopologyError.invalidCPUList` saying which item is wrong.
    public convenience init(parsing list: String) throws {
        let bitmap = Hwloc.allocateBitmap()
        do {
            for (lower, upper) in try Self.parseRanges(list) {
                Hwloc.setRange(bitmap, lower, upper)
            }
        } catch {
            Hwloc.freeBitmap(bitmap)
            throw error
        }
        self.init(adopting: bitmap)
    }

    /// OS indices of the PUs in the set, increasing.
    public var puOSIndices: [Int] {
        Hwloc.setIndices(bitmap)
    }

    /// Whether the set holds no PU.
    public var isEmpty: Bool {
        Hwloc.isZero(bitmap)
    }

    /// Number of PUs in the set.
    public var count: Int {
        Hwloc.weight(bitmap)
    }

    /// Whether the set holds a PU.
    ///
    /// - Parameter puOSIndex: OS index of the PU.
    /// - Returns: true when the PU is in the set.
    public func contains(_ puOSIndex: Int) -> Bool {
        Hwloc.isSet(bitmap, puOSIndex)
    }

    /// Whether every PU of this set is also in `other`.
    ///
    /// - Parameter other: the possible superset.
    /// - Returns: true when this set is included in `other` (always for an empty set).
    public func isSubset(of other: CPUSet) -> Bool {
        Hwloc.isIncluded(bitmap, in: other.bitmap)
    }

    /// - Parameter other: another set.
    /// - Returns: a new set with the PUs of both sets.
    public func union(_ other: CPUSet) -> CPUSet {
        CPUSet(adopting: Hwloc.union(bitmap, other.bitmap))
    }

    /// - Parameter other: another set.
    /// - Returns: a new set with the PUs that are in both sets.
    public func intersection(_ other: CPUSet) -> CPUSet {
        CPUSet(adopting: Hwloc.intersection(bitmap, other.bitmap))
    }

    /// Splits a list into inclusive ranges, validating every item.
    private static func parseRanges(_ list: String) throws -> [(Int, Int)] {
        let trimmedList = list.trimmingSpaces
        guard !trimmedList.isEmpty else { return [] }
        return try trimmedList.split(separator: ",", omittingEmptySubsequences: false).map { piece in
            let item = String(piece).trimmingSpaces
            let fail = { (reason: String) in TopologyError.invalidCPUList(list, reason: reason) }
            guard !item.isEmpty else { throw fail("empty item between commas") }
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2 else { throw fail("\"\(item)\" has more than one '-'") }
            let numbers = try bounds.map { piece -> Int in
                let bound = String(piece).trimmingSpaces
                guard !bound.isEmpty, bound.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                    throw fail("\"\(item)\" is not an index or a range first-last")
                }
                guard let value = Int(bound), value <= maximumIndex else {
                    throw fail("\(bound) is larger than the maximum PU index \(maximumIndex)")
                }
                return value
            }
            let (lower, upper) = (numbers[0], numbers[numbers.count - 1])
            guard lower <= upper else { throw fail("range \"\(item)\" is decreasing") }
            return (lower, upper)
        }
    }
}

extension CPUSet: CustomStringConvertible {
    /// The set in list syntax, e.g. `"0-3,6"`; `""` when empty.
    public var description: String {
        Hwloc.listString(bitmap)
    }
}

extension CPUSet: Hashable {
    public static func == (lhs: CPUSet, rhs: CPUSet) -> Bool {
        Hwloc.isEqual(lhs.bitmap, rhs.bitmap)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(puOSIndices)
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs (no Foundation needed).
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }),
              let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
