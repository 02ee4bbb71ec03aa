internal import CHwloc

/// Raw hwloc bitmap calls, in one place.
///
/// Everything else in the module handles bitmaps through `CPUSet`, which owns
/// one and frees it in `deinit`. These helpers take and return
/// `OpaquePointer` (`hwloc_bitmap_t`) and never free what they are given.
extension Hwloc {
    /// Allocates an empty bitmap; traps when out of memory, as `Array` would.
    ///
    /// - Returns: a bitmap the caller must release with `freeBitmap`.
    static func allocateBitmap() -> OpaquePointer {
        guard let bitmap = hwloc_bitmap_alloc() else {
            fatalError("hwloc_bitmap_alloc: out of memory")
        }
        return bitmap
    }

    /// Copies a bitmap; traps when out of memory.
    ///
    /// - Parameter bitmap: the bitmap to copy.
    /// - Returns: a new bitmap the caller must release with `freeBitmap`.
    static func duplicateBitmap(_ bitmap: OpaquePointer) -> OpaquePointer {
        guard let copy = hwloc_bitmap_dup(bitmap) else {
            fatalError("hwloc_bitmap_dup: out of memory")
        }
        return copy
    }

    /// Releases a bitmap made by `allocateBitmap` or `duplicateBitmap`.
    ///
    /// - Parameter bitmap: the bitmap to free.
    static func freeBitmap(_ bitmap: OpaquePointer) {
        hwloc_bitmap_free(bitmap)
    }

    /// Sets the bits `lower...upper` (both included).
    ///
    /// - Parameters:
    ///   - bitmap: the bitmap to change.
    ///   - lower: first index, at least 0.
    ///   - upper: last index, at least `lower`.
    static func setRange(_ bitmap: OpaquePointer, _ lower: Int, _ upper: Int) {
        let status = hwloc_bitmap_set_range(bitmap, UInt32(lower), Int32(upper))
        precondition(status == 0, "hwloc_bitmap_set_range: out of memory")
    }

    /// - Returns: whether bit `index` is set.
    static func isSet(_ bitmap: OpaquePointer, _ index: Int) -> Bool {
        guard index >= 0, index <= Int(UInt32.max) else { return false }
        return hwloc_bitmap_isset(bitmap, UInt32(index)) != 0
    }

    /// - Returns: the number of set bits; -1 for an infinitely set bitmap.
    static func weight(_ bitmap: OpaquePointer) -> Int {
        Int(hwloc_bitmap_weight(bitmap))
    }

    /// - Returns: whether no bit is set.
    static func isZero(_ bitmap: OpaquePointer) -> Bool {
        hwloc_bitmap_iszero(bitmap) != 0
    }

    /// Lists the set bits in increasing order.
    ///
    /// Swift cannot import `hwloc_bitmap_foreach_begin`, so this walks with
    /// `hwloc_bitmap_first` / `hwloc_bitmap_next`.
    ///
    /// - Parameter bitmap: a finite bitmap (an infinite one stops at its
    ///   last explicitly stored word).
    /// - Returns: the indices of the set bits.
    static func setIndices(_ bitmap: OpaquePointer) -> [Int] {
        var indices: [Int] = []
        var index = hwloc_bitmap_first(bitmap)
        while index >= 0 {
            indices.append(Int(index))
            index = hwloc_bitmap_next(bitmap, index)
        }
        return indices
    }

    /// - Returns: whether both bitmaps have the same bits set.
    static func isEqual(_ lhs: OpaquePointer, _ rhs: OpaquePointer) -> Bool {
        hwloc_bitmap_isequal(lhs, rhs) != 0
    }

    /// - Returns: whether every bit of `sub` is set in `sup`.
    static func isIncluded(_ sub: OpaquePointer, in sup: OpaquePointer) -> Bool {
        hwloc_bitmap_isincluded(sub, sup) != 0
    }

    /// - Returns: a new bitmap, `lhs | rhs`, owned by the caller.
    static func union(_ lhs: OpaquePointer, _ rhs: OpaquePointer) -> OpaquePointer {
        let result = allocateBitmap()
        precondition(hwloc_bitmap_or(result, lhs, rhs) == 0, "hwloc_bitmap_or: out of memory")
        return result
    }

    /// - Returns: a new bitmap, `lhs & rhs`, owned by the caller.
    static func intersection(_ lhs: OpaquePointer, _ rhs: OpaquePointer) -> OpaquePointer {
        let result = allocateBitmap()
        precondition(hwloc_bitmap_and(result, lhs, rhs) == 0, "hwloc_bitmap_and: out of memory")
        return result
    }

    /// Formats a bitmap in hwloc's list syntax, e.g. `"0-3,6"`.
    ///
    /// - Parameter bitmap: the bitmap to format.
    /// - Returns: the list; `""` when empty.
    static func listString(_ bitmap: OpaquePointer) -> String {
        // First call sizes the text (like snprintf), second fills it.
        let length = Int(hwloc_bitmap_list_snprintf(nil, 0, bitmap))
        guard length > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: length + 1)
        _ = buffer.withUnsafeMutableBufferPointer {
            hwloc_bitmap_list_snprintf($0.baseAddress, $0.count, bitmap)
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
