import Foundation
import Multihead

// libFuzzer target: `SafetensorsFile(data:)` on arbitrary bytes.
//
// The parser must either throw a `MultiheadError.format` or return a file whose every entry can be
// read back: as float32 (F32/F16/BF16/F64) or bool (BOOL/U8), else an `.unsupported` error. Any
// trap, sanitizer report or broken invariant is a finding. Invariants checked on success:
// - every entry's byte range lies inside the data and matches its dtype and shape;
// - the ranges tile the data with no gap or overlap;
// - a tensor read back has exactly shape.product elements.

/// Bytes per element, as the format defines them (kept here, not read from the library).
private let elementSizes: [String: Int] = [
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
]

private func fail(_ message: String) -> Never {
    fputs("fuzz-safetensors: invariant broken: \(message)\n", stderr)
    abort()
}

private func check(_ file: SafetensorsFile, dataLength: Int) {
    var ranges: [Range<Int>] = []
    for name in file.names {
        guard let entry = file.entries[name] else { fail("names lists '\(name)' but entries lacks it") }
        guard let size = elementSizes[entry.dtype] else { fail("accepted unknown dtype \(entry.dtype)") }
        guard entry.shape.allSatisfy({ $0 >= 0 }) else { fail("accepted negative shape \(entry.shape)") }
        var bytes = size
        for d in entry.shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            if overflow { fail("accepted overflowing shape \(entry.shape)") }
            bytes = p
        }
        guard entry.byteRange.count == bytes else { fail("'\(name)' range \(entry.byteRange) != \(bytes) bytes") }
        guard entry.byteRange.lowerBound >= 0, entry.byteRange.upperBound <= dataLength else {
            fail("'\(name)' range \(entry.byteRange) outside \(dataLength) bytes of data")
        }
        ranges.append(entry.byteRange)
        let count = entry.shape.reduce(1, *)
        do {
            let t = try file.floatTensor(name)
            guard t.shape == entry.shape, t.scalars.count == count else { fail("'\(name)' read back with \(t.scalars.count) values") }
        } catch MultiheadError.unsupported {
            do {
                let t = try file.boolTensor(name)
                guard t.scalars.count == count else { fail("'\(name)' read back with \(t.scalars.count) bools") }
            } catch MultiheadError.unsupported {
            } catch {
                fail("boolTensor('\(name)') threw \(error)")
            }
        } catch {
            fail("floatTensor('\(name)') threw \(error)")
        }
    }
    var position = 0
    for range in ranges.sorted(by: { ($0.lowerBound, $0.upperBound) < ($1.lowerBound, $1.upperBound) }) {
        guard range.lowerBound == position else { fail("ranges leave a gap or overlap at \(position): \(ranges)") }
        position = range.upperBound
    }
    guard position == dataLength else { fail("ranges cover \(position) of \(dataLength) bytes") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(bytes: bytes, count: size)
    do {
        let file = try SafetensorsFile(data: data, path: "<fuzz>")
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        check(file, dataLength: size - 8 - headerLength)
    } catch MultiheadError.format(let message) {
        if message.isEmpty { fail("empty format error message") }
    } catch {
        fail("SafetensorsFile(data:) threw a non-format error: \(error)")
    }
    return 0
}
