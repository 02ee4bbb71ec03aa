import Foundation
import XCTest
@testable import Multihead

/// LayerNorm, Linear, GELU and the encoder layers' API: shapes, strides, parameters, errors.
final class EncoderLayerTests: XCTestCase {
    func testGELUIsExactToFloatPrecision() {
        var worstAbsolute = 0.0, worstRelative = 0.0
        var x: [Float] = stride(from: -12.0 as Float, through: 12, by: 0.001).map { $0 }
        x += [0, -0, 1e-30, -1e-30, 3e-8, 50, -50, 1e4, -1e4]
        var y = x
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * GELU.chunk)
        defer { scratch.deallocate() }
        y.withUnsafeMutableBufferPointer { Activation.gelu.apply($0.baseAddress!, count: $0.count, scratch: scratch) }
        for (input, output) in zip(x, y) {
            let v = Double(input)
            let exact = 0.5 * v * erfc(-v / 2.0.squareRoot())
            let error = abs(Double(output) - exact)
            worstAbsolute = max(worstAbsolute, error / max(abs(v), 1))
            worstRelative = max(worstRelative, error / max(abs(exact), 1e-6))
        }
        // PyTorch's own float kernel (an erf good to 1.5e-7 absolute): 2.8e-7 and 8e-4 (floor 1e-3).
        XCTAssertLessThan(worstAbsolute, 2e-7)
        XCTAssertLessThan(worstRelative, 3e-6)
        var relu: [Float] = [-2, -0.0, 0, 3, .nan]
        relu.withUnsafeMutableBufferPointer { Activation.relu.apply($0.baseAddress!, count: $0.count, scratch: scratch) }
        XCTAssertEqual(Array(relu[0..<4]), [0, -0.0, 0, 3])
        XCTAssert(relu[4].isNaN)
    }

    func testLayerNormMatchesDoubleReference() throws {
        let norm = try LayerNorm(12, eps: 1e-5)
        let weight = try Tensor<Float>(randomNormal: [12], seed: 1), bias = try Tensor<Float>(randomNormal: [12], seed: 2)
        try norm.loadStateDict(["weight": weight, "bias": bias])
        var x = try Tensor<Float>(randomNormal: [3, 70, 12], seed: 3)
        x.scalars = x.scalars.map { $0 * 100 + 50 }   // large mean: a one-pass variance would lose digits
        let y = try norm(x)
        XCTAssertEqual(y.shape, x.shape)
        let reference = ReferenceEncoderLayer(config: try TransformerEncoderLayerConfig(dModel: 12, nhead: 1), parameters: [:])
        var expected: [Double] = []
        for r in 0..<(3 * 70) {
            expected += reference.layerNorm(x.scalars[r * 12 ..< (r + 1) * 12].map(Double.init),
                                            weight: weight.scalars.map(Double.init), bias: bias.scalars.map(Double.init), eps: 1e-5)
        }
        XCTAssertLessThan(relativeError(y.scalars, expected), 1e-5)
        // Without affine parameters, and in place through a strided (transposed) view.
        let plain = try LayerNorm(4, elementwiseAffine: false)
        XCTAssertTrue(plain.parameterShapes.isEmpty)
        var data: [Float] = [1, 5, 2, 6, 3, 7, 4, 8]     // [4, 2] memory = the transpose of rows [1,2,3,4], [5,6,7,8]
        try data.withUnsafeMutableBufferPointer { buffer in
            let view = TensorView(base: UnsafeRawPointer(buffer.baseAddress!), element: .float32, shape: [2, 4], strides: [1, 2])
            try plain.forward(input: view, output: MutableTensorView(base: buffer.baseAddress!, shape: [2, 4], strides: [1, 2]))
        }
        let row = (0..<4).map { data[$0 * 2] }
        XCTAssertEqual(row[0], -row[3], accuracy: 1e-6)
        XCTAssertEqual(row[1], -row[2], accuracy: 1e-6)
        XCTAssertEqual(data[0], data[1], accuracy: 1e-6)
        XCTAssertThrowsError(try norm(Tensor<Float>(zeros: [2, 5]))) { XCTAssert("\($0)".contains("normalized_shape [12]")) }
        XCTAssertThrowsError(try LayerNorm(0)) { XCTAssert("\($0)".contains("normalized_shape")) }
    }

    func testLinearMatchesDoubleReference() throws {
        let linear = try Linear(inFeatures: 37, outFeatures: 53, seed: 4)
        XCTAssertEqual(linear.parameterShapes.map(\.name), ["weight", "bias"])
        let x = try Tensor<Float>(randomNormal: [2, 67, 37], seed: 5)
        let y = try linear(x)
        XCTAssertEqual(y.shape, [2, 67, 53])
        let w = try linear.parameter("weight").scalars, b = try linear.parameter("bias").scalars
        var expected = [Double](repeating: 0, count: 2 * 67 * 53)
        for r in 0..<(2 * 67) {
            for o in 0..<53 {
                var s = Double(b[o])
                for i in 0..<37 { s += Double(w[o * 37 + i]) * Double(x.scalars[r * 37 + i]) }
                expected[r * 53 + o] = s
            }
        }
        XCTAssertLessThan(relativeError(y.scalars, expected), 1e-5)
        // A new weight is packed again.
        try linear.setParameter("weight", Tensor(zeros: [53, 37]))
        XCTAssertEqual(try linear(x).scalars.prefix(53).map { $0 }, b)
        XCTAssertThrowsError(try linear.setParameter("weight", Tensor(zeros: [37, 53]))) { XCTAssert("\($0)".contains("[53, 37]")) }
        XCTAssertThrowsError(try linear(Tensor<Float>(zeros: [3, 36]))) { XCTAssert("\($0)".contains("in_features=37")) }
        XCTAssertEqual(try Linear(inFeatures: 3, outFeatures: 2, bias: false).parameterShapes.map(\.name), ["weight"])
    }

    func testParameterNamesFollowPyTorch() throws {
        let layer = try TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 16)
        XCTAssertEqual(layer.parameterShapes.map(\.name), [
            "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
            "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
            "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"])
        XCTAssertEqual(layer.config.dropout, 0.1)
        XCTAssertEqual(try TransformerEncoderLayer(dModel: 8, nhead: 2).config.dimFeedforward, 2048)
        let noBias = try TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 16, bias: false)
        XCTAssertEqual(noBias.parameterShapes.map(\.name), ["self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                                            "linear1.weight", "linear2.weight", "norm1.weight", "norm2.weight"])
        let encoder = try TransformerEncoder(encoderLayer: layer, numLayers: 3, norm: LayerNorm(8))
        let names = encoder.parameterShapes.map(\.name)
        XCTAssertEqual(names.count, 3 * 12 + 2)
        XCTAssertEqual(names.first, "layers.0.self_attn.in_proj_weight")
        XCTAssertEqual(Array(names.suffix(3)), ["layers.2.norm2.bias", "norm.weight", "norm.bias"])
        // Layers are copies: same values, independent storage.
        XCTAssertEqual(try encoder.parameter("layers.2.linear1.weight").scalars, try layer.parameter("linear1.weight").scalars)
        try encoder.setParameter("layers.1.linear1.bias", Tensor(zeros: [16]))
        XCTAssertNotEqual(try layer.parameter("linear1.bias").scalars, [Float](repeating: 0, count: 16))
        XCTAssertThrowsError(try encoder.parameter("layers.3.linear1.bias")) { XCTAssert("\($0)".contains("unknown parameter 'layers.3.linear1.bias'")) }
        XCTAssertThrowsError(try encoder.loadStateDict(["norm.weight": Tensor(zeros: [8])])) { XCTAssert("\($0)".contains("missing key(s)")) }
        let dict = encoder.stateDict()
        XCTAssertThrowsError(try encoder.loadStateDict(dict.merging(["extra": Tensor(zeros: [1])]) { a, _ in a })) {
            XCTAssert("\($0)".contains("unexpected key(s): extra"))
        }
        try encoder.loadStateDict(dict)
    }

    func testShapeErrorsNameTheArgument() throws {
        let layer = try TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 16, batchFirst: true)
        let x = try Tensor<Float>(zeros: [2, 5, 8])
        func expect(_ words: [String], line: UInt = #line, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), line: line) { error in
                for word in words { XCTAssert("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
            }
        }
        expect(["d_model=8", "[2, 5, 6]"]) { _ = try layer(Tensor<Float>(zeros: [2, 5, 6])) }
        expect(["src should be", "[8]"]) { _ = try layer(Tensor<Float>(zeros: [8])) }
        expect(["src_mask", "[5, 5] or [4, 5, 5]", "[5, 4]"]) { _ = try layer(x, srcMask: .bool(Tensor(shape: [5, 4], scalars: [Bool](repeating: false, count: 20)))) }
        expect(["src_key_padding_mask", "[2, 5]"]) { _ = try layer(x, srcKeyPaddingMask: .float(Tensor(zeros: [5]))) }
        let encoder = try TransformerEncoder(encoderLayer: layer, numLayers: 2)
        expect(["mask must have shape"]) { _ = try encoder(x, mask: .float(Tensor(zeros: [4, 4]))) }
        expect(["num_layers"]) { _ = try TransformerEncoder(encoderLayer: layer, numLayers: 0) }
        expect(["normalized_shape 4", "d_model=8"]) { _ = try TransformerEncoder(encoderLayer: layer, numLayers: 1, norm: LayerNorm(4)) }
        expect(["divisible"]) { _ = try TransformerEncoderLayer(dModel: 10, nhead: 4) }
        expect(["activation should be relu/gelu, not tanh"]) { _ = try Activation(name: "tanh") }
        expect(["dim_feedforward"]) { _ = try TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 0) }
        var out = [Float](repeating: 0, count: 80)
        expect(["output must have the shape of src"]) {
            try x.withView { view in
                try out.withUnsafeMutableBufferPointer {
                    try layer.forward(src: view, output: MutableTensorView(base: $0.baseAddress!, shape: [2, 8, 5], strides: [40, 5, 1]))
                }
            }
        }
        // Empty inputs are fine.
        XCTAssertEqual(try layer(Tensor<Float>(zeros: [0, 5, 8])).shape, [0, 5, 8])
        XCTAssertEqual(try layer(Tensor<Float>(zeros: [2, 0, 8])).shape, [2, 0, 8])
    }

    /// Layouts are views: (L, N, E) and (N, L, E) of the same data give the same bits, and so do
    /// strided outputs; a large problem gives the same bits on 1 and 2 threads.
    func testLayoutsStridesAndThreads() throws {
        let first = try TransformerEncoderLayer(dModel: 32, nhead: 4, dimFeedforward: 80, activation: .gelu, batchFirst: true, seed: 9)
        let second = try TransformerEncoderLayer(dModel: 32, nhead: 4, dimFeedforward: 80, activation: .gelu, batchFirst: false,
                                                 engine: Engine(threads: 1))
        try second.loadStateDict(first.stateDict())
        let N = 3, L = 70, E = 32
        let x = try Tensor<Float>(randomNormal: [N, L, E], seed: 10)
        var padding = [Bool](repeating: false, count: N * L)
        for n in 0..<N { for l in (L - 7 * n)..<L { padding[n * L + l] = true } }
        let mask = Mask.bool(try Tensor(shape: [N, L], scalars: padding))
        let batchFirst = try first(x, srcKeyPaddingMask: mask)
        var transposed = [Float](repeating: 0, count: N * L * E)
        for n in 0..<N { for l in 0..<L { for e in 0..<E { transposed[(l * N + n) * E + e] = x.scalars[(n * L + l) * E + e] } } }
        let sequenceFirst = try second(Tensor(shape: [L, N, E], scalars: transposed), srcKeyPaddingMask: mask)
        for n in 0..<N {
            for l in 0..<L {
                for e in 0..<E {
                    XCTAssertEqual(sequenceFirst.scalars[(l * N + n) * E + e].bitPattern, batchFirst.scalars[(n * L + l) * E + e].bitPattern)
                }
            }
        }
        // The (N, L, E) memory read through (L, N, E) strides, written to a strided output.
        var out = [Float](repeating: 0, count: N * L * E)
        try x.withView { view in
            let strided = TensorView(base: view.base, element: .float32, shape: [L, N, E], strides: [E, L * E, 1])
            try out.withUnsafeMutableBufferPointer {
                try second.forward(src: strided, srcKeyPaddingMask: nil, output: MutableTensorView(base: $0.baseAddress!, shape: [L, N, E], strides: [E, L * E, 1]))
            }
        }
        let plain = try first(x)
        XCTAssertEqual(out.map(\.bitPattern), plain.scalars.map(\.bitPattern))
    }
}
