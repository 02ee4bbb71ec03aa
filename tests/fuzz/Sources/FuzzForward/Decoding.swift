import CMultiheadHeader
import Foundation

// Turning fuzz bytes into choices, and tensors into strided buffers that catch stray reads and
// writes: input padding holds a quiet NaN (a read of it poisons the result), output buffers start
// as a signalling NaN that arithmetic never produces (an element left unwritten, or a write outside
// the view, shows up as that exact bit pattern in the wrong place).

/// Reads choices from the fuzz input; past its end every choice is 0.
struct Choices {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    mutating func byte() -> Int {
        defer { position += 1 }
        return position < bytes.count ? Int(bytes[position]) : 0
    }

    /// 0 ..< n.
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : byte() % n }

    /// True one time in `n`.
    mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 && position <= bytes.count }

    mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }

    mutating func seed() -> UInt64 {
        var s: UInt64 = 0
        for _ in 0..<4 { s = s << 8 | UInt64(byte()) }
        return s
    }
}

/// SplitMix64: the values of tensors, so that a few input bytes describe many numbers.
struct Values {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}

let inputPadding = Float(bitPattern: 0x7FC0_1234)  // quiet NaN
let outputSentinel: UInt32 = 0x7FA5_A5A5           // signalling NaN: never computed

/// One tensor: a descriptor and the memory behind it.
final class Buffer {
    /// The descriptor, at a stable address for the C calls.
    let pointer = UnsafeMutablePointer<mh_tensor>.allocate(capacity: 1)
    var descriptor: mh_tensor {
        get { pointer.pointee }
        set { pointer.pointee = newValue }
    }
    let elementSize: Int
    /// Elements allocated, and where element (0, ..., 0) sits among them.
    let allocated: Int
    let origin: Int
    let storage: UnsafeMutableRawPointer

    var rank: Int { Int(descriptor.rank) }
    var shape: [Int64] { withUnsafeBytes(of: descriptor.shape) { Array($0.bindMemory(to: Int64.self).prefix(max(0, min(rank, 8)))) } }
    var strides: [Int64] { withUnsafeBytes(of: descriptor.strides) { Array($0.bindMemory(to: Int64.self).prefix(max(0, min(rank, 8)))) } }

    /// A strided layout of `shape`: axes in a chosen memory order, gaps after some axes, some
    /// strides negated, some 0 (broadcast) when `broadcast` allows; axes in `huge` always get 0.
    init(shape: [Int64], dtype: Int32, choices: inout Choices, broadcast: Bool, huge: Set<Int> = []) {
        elementSize = dtype == Int32(MH_DTYPE_BOOL.rawValue) ? 1 : 4
        let rank = shape.count
        var order = Array(0..<rank)  // outermost first
        if !choices.oneIn(3) {
            for i in stride(from: rank - 1, to: 0, by: -1) { order.swapAt(i, choices.below(i + 1)) }
        }
        var strides = [Int64](repeating: 0, count: rank)
        var running: Int64 = 1
        var origin: Int64 = 0
        for axis in order.reversed() {
            if huge.contains(axis) || (broadcast && choices.oneIn(8)) { continue }
            let negative = choices.oneIn(6)
            strides[axis] = negative ? -running : running
            if negative { origin += running * max(shape[axis] - 1, 0) }
            running = running * max(shape[axis], 1) + (choices.oneIn(4) ? Int64(choices.below(3)) : 0)
        }
        allocated = Int(max(running, 1))
        self.origin = Int(origin)
        storage = .allocate(byteCount: allocated * elementSize, alignment: 16)
        pointer.initialize(to: mh_tensor())
        descriptor.data = storage + Int(origin) * elementSize
        descriptor.dtype = dtype
        descriptor.rank = Int32(rank)
        withUnsafeMutableBytes(of: &descriptor.shape) { raw in
            for (i, d) in shape.enumerated() { raw.storeBytes(of: d, toByteOffset: 8 * i, as: Int64.self) }
        }
        withUnsafeMutableBytes(of: &descriptor.strides) { raw in
            for (i, s) in strides.enumerated() { raw.storeBytes(of: s, toByteOffset: 8 * i, as: Int64.self) }
        }
    }

    deinit {
        storage.deallocate()
        pointer.deallocate()
    }

    /// Every logical index, row-major (nothing for shapes past `limit` elements).
    func indices(limit: Int = 1 << 16) -> [[Int]] {
        let shape = self.shape.map { Int($0) }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if d <= 0 || overflow || p > limit { return [] }
            count = p
        }
        var result: [[Int]] = []
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            result.append(index)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// Element offset (from the allocation's start) of a logical index.
    func offset(_ index: [Int]) -> Int {
        var o = origin
        for (i, s) in zip(index, strides) { o += i * Int(s) }
        return o
    }

    func float(_ index: [Int]) -> Float { storage.load(fromByteOffset: offset(index) * 4, as: Float.self) }
    func byte(_ index: [Int]) -> UInt8 { storage.load(fromByteOffset: offset(index), as: UInt8.self) }

    /// Fills padding with `inputPadding` and the elements from `value`.
    func fillFloats(_ value: () -> Float) {
        let p = storage.bindMemory(to: Float.self, capacity: allocated)
        for i in 0..<allocated { p[i] = inputPadding }
        for index in indices() { p[offset(index)] = value() }
    }

    /// Bool masks: padding is 1 (masked), so a stray read changes the result.
    func fillBytes(_ value: () -> UInt8) {
        let p = storage.bindMemory(to: UInt8.self, capacity: allocated)
        for i in 0..<allocated { p[i] = 1 }
        for index in indices() { p[offset(index)] = value() }
    }

    func fillSentinel() {
        let p = storage.bindMemory(to: UInt32.self, capacity: allocated)
        for i in 0..<allocated { p[i] = outputSentinel }
    }
}
