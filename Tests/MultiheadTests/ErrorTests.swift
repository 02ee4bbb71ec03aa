import Foundation
import XCTest
@testable import Multihead

/// Every error a user can cause is thrown (never a trap), and its message names the argument and
/// the shapes involved.
final class ErrorTests: XCTestCase {
    func assertThrows(_ expression: @autoclosure () throws -> Any, _ fragments: [String],
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssert(error is MultiheadError, "not a MultiheadError: \(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssert(message.contains(fragment), "'\(message)' does not mention '\(fragment)'", file: file, line: line)
            }
        }
    }

    func testConstructorErrors() {
        assertThrows(try MultiheadAttention(embedDim: 6, numHeads: 4), ["embed_dim must be divisible by num_heads", "embed_dim=6", "num_heads=4"])
        assertThrows(try MultiheadAttention(embedDim: 0, numHeads: 1), ["embed_dim must be positive", "0"])
        assertThrows(try MultiheadAttention(embedDim: 4, numHeads: -2), ["num_heads must be positive", "-2"])
        assertThrows(try MultiheadAttention(embedDim: 4, numHeads: 2, kdim: 0), ["kdim must be positive"])
        assertThrows(try MultiheadAttention(embedDim: 4, numHeads: 2, qdim: -1), ["qdim must be positive"])
        assertThrows(try MultiheadAttention(embedDim: 4, numHeads: 2, dropout: 1.5), ["dropout", "1.5"])
        assertThrows(try MultiheadAttention(embedDim: Int.max / 2, numHeads: 1), ["in_proj_weight", "overflows"])
        assertThrows(try Engine(threads: -1), ["threads", "-1"])
        assertThrows(try Tensor<Float>(shape: [2, 3], scalars: [1, 2]), ["[2, 3]", "6", "2"])
    }

    func testForwardShapeErrors() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2, kdim: 6)
        let q = try Tensor<Float>(zeros: [3, 2, 4])
        let k = try Tensor<Float>(zeros: [5, 2, 6])
        let v = try Tensor<Float>(zeros: [5, 2, 4])
        assertThrows(try m(try Tensor<Float>(zeros: [1, 3, 2, 4]), k, v), ["query", "4-D", "[1, 3, 2, 4]"])
        assertThrows(try m(q, try Tensor<Float>(zeros: [5, 6]), v), ["key", "2-D", "[5, 6]"])
        assertThrows(try m(q, try Tensor<Float>(zeros: [5, 2, 4]), v), ["key", "[5, 2, 4]", "kdim=6"])
        assertThrows(try m(try Tensor<Float>(zeros: [3, 2, 5]), k, v), ["query", "[3, 2, 5]", "embed_dim=4"])
        assertThrows(try m(q, k, try Tensor<Float>(zeros: [4, 2, 4])), ["key", "value", "[4, 2, 4]", "sequence length"])
        assertThrows(try m(q, try Tensor<Float>(zeros: [5, 3, 6]), try Tensor<Float>(zeros: [5, 3, 4])), ["batch", "[3, 2, 4]", "[5, 3, 6]"])
        assertThrows(try m(q, k, v, keyPaddingMask: .bool(try Tensor(shape: [2, 4], scalars: [Bool](repeating: false, count: 8)))),
                     ["key_padding_mask", "[2, 5]", "[2, 4]"])
        assertThrows(try m(q, k, v, attnMask: .float(try Tensor<Float>(zeros: [3, 4]))), ["2D attn_mask", "[3, 4]", "[3, 5]"])
        assertThrows(try m(q, k, v, attnMask: .float(try Tensor<Float>(zeros: [2, 3, 5]))), ["3D attn_mask", "[2, 3, 5]", "[4, 3, 5]"])
        assertThrows(try m(q, k, v, attnMask: .float(try Tensor<Float>(zeros: [1, 1, 3, 5]))), ["attn_mask", "4", "[1, 1, 3, 5]"])
        let unbatched = try Tensor<Float>(zeros: [3, 4])
        assertThrows(try m(unbatched, try Tensor<Float>(zeros: [5, 6]), try Tensor<Float>(zeros: [5, 4]),
                           keyPaddingMask: .bool(try Tensor(shape: [1, 5], scalars: [Bool](repeating: false, count: 5)))),
                     ["key_padding_mask", "[5]", "[1, 5]"])
    }

    func testViewErrors() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        var data = [Float](repeating: 0, count: 64)
        try data.withUnsafeMutableBufferPointer { p in
            let f = TensorView(base: p.baseAddress!, element: .float32, shape: [2, 1, 4], strides: [4, 4, 1])
            let b = TensorView(base: p.baseAddress!, element: .bool, shape: [2, 1, 4], strides: [4, 4, 1])
            let out = MutableTensorView(base: p.baseAddress!, shape: [2, 1, 4], strides: [4, 4, 1])
            assertThrows(try m.forward(query: b, key: f, value: f, output: out, weights: nil), ["query must be float32", "bool"])
            assertThrows(try m.forward(query: f, key: f, value: f, output: out, weights: nil), ["need_weights", "weights"])
            let badOut = MutableTensorView(base: p.baseAddress!, shape: [2, 4], strides: [4, 1])
            assertThrows(try m.forward(query: f, key: f, value: f, options: ForwardOptions(needWeights: false), output: badOut, weights: nil),
                         ["output must have shape [2, 1, 4]", "[2, 4]"])
            let badWeights = MutableTensorView(base: p.baseAddress!, shape: [1, 2, 3], strides: [6, 3, 1])
            assertThrows(try m.forward(query: f, key: f, value: f, output: out, weights: badWeights), ["weights must have shape [1, 2, 2]", "[1, 2, 3]"])
            let mismatched = TensorView(base: p.baseAddress!, element: .float32, shape: [2, 1, 4], strides: [4, 1])
            assertThrows(try m.forward(query: mismatched, key: f, value: f, output: out, weights: nil), ["query", "2 strides"])
        }
    }

    func testParameterErrors() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        assertThrows(try m.setParameter("q_proj_weight", Tensor(zeros: [4, 4])), ["unknown parameter 'q_proj_weight'", "in_proj_weight"])
        assertThrows(try m.setParameter("in_proj_weight", Tensor(zeros: [4, 4])), ["in_proj_weight", "[12, 4]", "[4, 4]"])
        assertThrows(try m.loadStateDict(["in_proj_weight": try Tensor(zeros: [12, 4])]), ["missing key(s)", "out_proj.weight"])
        var sd = m.stateDict()
        sd["extra"] = try Tensor(zeros: [1])
        assertThrows(try m.loadStateDict(sd), ["unexpected key(s): extra"])
        sd["extra"] = nil
        sd["out_proj.bias"] = try Tensor(zeros: [5])
        assertThrows(try m.loadStateDict(sd), ["size mismatch for out_proj.bias", "[5]", "[4]"])
        XCTAssertNoThrow(try m.loadStateDict(m.stateDict()))
    }
}
