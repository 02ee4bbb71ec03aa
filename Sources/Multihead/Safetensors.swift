import Foundation

/// A `.safetensors` file: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and `[begin, end)` byte range, then the data.
///
/// Everything is checked before any tensor is read: the header length against the file size,
/// the JSON, each dtype and shape, each byte range against the data size and against the size the
/// shape implies, and that ranges neither overlap nor leave gaps (as the reference implementation
/// requires). A malformed file throws `MultiheadError.format` naming the problem.
public struct SafetensorsFile: Sendable {
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var byteRange: Range<Int>
    }

    /// Bytes per element of each dtype the format defines.
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
    ]
    /// A header larger than this is refused, as the reference implementation does (100 MB).
    static let maximumHeaderLength = 100_000_000

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let data: Data
    let dataStart: Int

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Opens and validates `path`.
    /// - Throws: `MultiheadError.io` when it cannot be read, `.format` when it is malformed.
    public init(path: String) throws {
        // Foundation leaks a 4 KiB buffer reading an empty file (found with valgrind): an empty
        // regular file is rejected without reading it.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size == 0 {
            try self.init(data: Data(), path: path)
            return
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw MultiheadError.io("cannot read safetensors file '\(path)': \(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    /// Validates in-memory file contents (`path` is used in messages only).
    public init(data: Data, path: String = "<memory>") throws {
        self.path = path
        self.data = data
        func fail(_ message: String) -> MultiheadError { .format("safetensors file '\(path)': \(message)") }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        var headerLength: UInt64 = 0
        for (i, byte) in data.prefix(8).enumerated() {
            headerLength |= UInt64(byte) << UInt64(8 * i)
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        guard headerLength <= UInt64(Self.maximumHeaderLength) else {
            throw fail("header length \(headerLength) exceeds the limit of \(Self.maximumHeaderLength) bytes")
        }
        dataStart = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: data.startIndex + 8 ..< data.startIndex + dataStart)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw fail("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else { throw fail("header is not a JSON object") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let dataLength = data.count - dataStart
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (key, item) in map {
                    guard let text = item as? String else { throw fail("__metadata__['\(key)'] is not a string") }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try Self.parseEntry(name, value, dataLength: dataLength, fail: fail)
        }
        // Ranges must tile the data exactly: no overlap, no gap.
        var position = 0
        for (name, entry) in entries.sorted(by: { ($0.value.byteRange.lowerBound, $0.key) < ($1.value.byteRange.lowerBound, $1.key) }) {
            if entry.byteRange.lowerBound < position {
                throw fail("tensor '\(name)' data_offsets \(entry.byteRange) overlap the previous tensor (which ends at \(position))")
            }
            if entry.byteRange.lowerBound > position {
                throw fail("tensor '\(name)' data_offsets \(entry.byteRange) leave a gap after byte \(position)")
            }
            position = entry.byteRange.upperBound
        }
        if position != dataLength {
            throw fail("tensors cover \(position) bytes of data but the file holds \(dataLength)")
        }
        self.entries = entries
        self.metadata = metadata
    }

    static func parseEntry(_ name: String, _ value: Any, dataLength: Int,
                           fail: (String) -> MultiheadError) throws -> Entry {
        guard let info = value as? [String: Any] else { throw fail("tensor '\(name)' is not an object") }
        guard let dtype = info["dtype"] as? String else { throw fail("tensor '\(name)' has no string 'dtype'") }
        guard let elementSize = elementSizes[dtype] else { throw fail("tensor '\(name)' has unknown dtype '\(dtype)'") }
        guard let shapeValues = info["shape"] as? [Any] else { throw fail("tensor '\(name)' has no 'shape' list") }
        var shape: [Int] = []
        for dim in shapeValues {
            guard let number = dim as? NSNumber, number.doubleValue == number.doubleValue.rounded(),
                  number.doubleValue >= 0, number.doubleValue < 9.0e18 else {
                throw fail("tensor '\(name)' has an invalid dimension \(dim) in its shape")
            }
            shape.append(number.intValue)
        }
        guard let offsets = info["data_offsets"] as? [Any], offsets.count == 2,
              let begin = (offsets[0] as? NSNumber)?.doubleValue, let end = (offsets[1] as? NSNumber)?.doubleValue,
              begin >= 0, end >= begin, begin == begin.rounded(), end == end.rounded() else {
            throw fail("tensor '\(name)' has invalid 'data_offsets' (need [begin, end] with 0 <= begin <= end)")
        }
        guard end <= Double(dataLength) else {
            // Not Int(end): an offset such as 1e30 does not fit an Int, and the conversion traps.
            func text(_ x: Double) -> String { x < 9.0e18 ? String(Int(x)) : String(x) }
            throw fail("tensor '\(name)' data_offsets [\(text(begin)), \(text(end))] run past the data (\(dataLength) bytes)")
        }
        let byteRange = Int(begin)..<Int(end)
        var bytes = elementSize
        for d in shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("tensor '\(name)' shape \(shape) is too large") }
            bytes = p
        }
        guard bytes == byteRange.count else {
            throw fail("tensor '\(name)' of dtype \(dtype) and shape \(shape) needs \(bytes) bytes but data_offsets give \(byteRange.count)")
        }
        return Entry(dtype: dtype, shape: shape, byteRange: byteRange)
    }

    func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else {
            throw MultiheadError.invalidArgument("safetensors file '\(path)' has no tensor '\(name)'")
        }
        return entry
    }

    func withBytes<R>(_ entry: Entry, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[(dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound)]))
        }
    }

    /// Tensor `name` converted to float32 (from F32, F16, BF16 or F64).
    /// - Throws: `.invalidArgument` when absent, `.unsupported` for other dtypes.
    public func floatTensor(_ name: String) throws -> Tensor<Float> {
        let entry = try entry(name)
        let count = entry.shape.reduce(1, *)
        let scalars: [Float] = try withBytes(entry) { raw in
            switch entry.dtype {
            case "F32": return (0..<count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) }
            case "F16": return (0..<count).map { floatFromHalf(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) }
            case "BF16": return (0..<count).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) << 16) }
            case "F64": return (0..<count).map { Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian)) }
            default:
                throw MultiheadError.unsupported("tensor '\(name)' in '\(path)' has dtype \(entry.dtype); float tensors must be F32, F16, BF16 or F64")
            }
        }
        return Tensor(uncheckedShape: entry.shape, scalars: scalars)
    }

    /// Tensor `name` as booleans (from BOOL or U8; nonzero = true).
    public func boolTensor(_ name: String) throws -> Tensor<Bool> {
        let entry = try entry(name)
        guard entry.dtype == "BOOL" || entry.dtype == "U8" else {
            throw MultiheadError.unsupported("tensor '\(name)' in '\(path)' has dtype \(entry.dtype); expected BOOL or U8")
        }
        let scalars = withBytes(entry) { raw in raw.map { $0 != 0 } }
        return Tensor(uncheckedShape: entry.shape, scalars: scalars)
    }

    /// The dtype of tensor `name`.
    public func dtype(_ name: String) throws -> String { try entry(name).dtype }
}

/// IEEE half to float, denormals and infinities included.
func floatFromHalf(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1.0p-24
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
}
