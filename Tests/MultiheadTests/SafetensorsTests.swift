import Foundation
import XCTest
@testable import Multihead

/// The parser accepts what `safetensors.torch.save_file` writes, and rejects malformed files with
/// a message naming the problem.
final class SafetensorsTests: XCTestCase {
    /// Builds a file from a header object and raw data.
    func file(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
        let h = Array(header.utf8)
        var out = Data()
        var n = (length ?? UInt64(h.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: data)
        return out
    }

    func assertFormatError(_ data: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(data: data), file: file, line: line) { error in
            guard case .format(let message) = error as? MultiheadError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssert(message.contains(fragment), "'\(message)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    func testReadsF32F16BF16() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[1,1],"data_offsets":[12,14]},"__metadata__":{"k":"v"}}"#
        var bytes: [UInt8] = []
        for f in [Float(1.5), -2] { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes += $0 } }
        bytes += [0x00, 0x3C, 0x00, 0xC0]   // F16 1.0, -2.0
        bytes += [0x40, 0x40]               // BF16 3.0
        let f = try SafetensorsFile(data: file(header, data: bytes))
        XCTAssertEqual(try f.floatTensor("a").scalars, [1.5, -2])
        XCTAssertEqual(try f.floatTensor("b").scalars, [1, -2])
        XCTAssertEqual(try f.floatTensor("c").scalars, [3])
        XCTAssertEqual(try f.floatTensor("c").shape, [1, 1])
        XCTAssertEqual(f.metadata, ["k": "v"])
    }

    func testHalfConversionEdgeCases() {
        XCTAssertEqual(floatFromHalf(0x7C00), .infinity)
        XCTAssert(floatFromHalf(0x7E00).isNaN)
        XCTAssertEqual(floatFromHalf(0x0001), 0x1.0p-24)
        XCTAssertEqual(floatFromHalf(0x8000).sign, .minus)
        XCTAssertEqual(floatFromHalf(0x7BFF), 65504)
    }

    func testMalformedFilesAreRejected() {
        assertFormatError(Data([1, 2, 3]), "shorter than the 8-byte header length")
        assertFormatError(file("{}", length: 1000), "header length 1000 runs past the end")
        assertFormatError(file("{not json"), "not valid JSON")
        assertFormatError(file("[1,2]"), "not a JSON object")
        assertFormatError(file(#"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "unknown dtype 'Q7'")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "needs 8 bytes but data_offsets give 4")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]), "run past the data")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), "invalid 'data_offsets'")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "invalid dimension")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                               data: [0, 0, 0, 0]), "overlap")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "gap")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 8)), "cover 4 bytes")
        assertFormatError(file(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "too large")
        assertFormatError(file(#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "no 'shape'")
        assertFormatError(file(#"{"__metadata__":{"k":1}}"#), "__metadata__['k'] is not a string")
    }

    func testMissingFileIsAnIOError() {
        XCTAssertThrowsError(try SafetensorsFile(path: "/nonexistent/x.safetensors")) { error in
            guard case .io(let message) = error as? MultiheadError else { return XCTFail("\(error)") }
            XCTAssert(message.contains("/nonexistent/x.safetensors"))
        }
    }

    func testUnsupportedDtypeForParameters() throws {
        let f = try SafetensorsFile(data: file(#"{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#, data: [1, 0, 0, 0]))
        XCTAssertThrowsError(try f.floatTensor("a")) { error in
            guard case .unsupported(let message) = error as? MultiheadError else { return XCTFail("\(error)") }
            XCTAssert(message.contains("I32"))
        }
    }

    /// A module loads a file written the way PyTorch's state_dict would be saved, with a prefix.
    func testLoadSafetensorsWithPrefix() throws {
        let fixture = try Fixture.all("seed")[0]
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        try m.loadSafetensors(path: fixture.file.path, prefix: "param.")
        XCTAssertEqual(try m.parameter("in_proj_weight").scalars, try fixture.file.floatTensor("param.in_proj_weight").scalars)
        XCTAssertThrowsError(try m.loadSafetensors(path: fixture.file.path, prefix: "nothing.")) { error in
            XCTAssert("\(error)".contains("lacks parameter(s): nothing.in_proj_weight"), "\(error)")
        }
    }
}
