// The seed article's Example 3 in Swift: its encoder layer (attention, linear1 E -> E, relu,
// linear2, two layer norms, post-norm) is TransformerEncoderLayer(dModel: 4, nhead: 2,
// dimFeedforward: 4), checked against PyTorch's output for the same weights
// (Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors). To run it with the other
// examples, main.swift adds: `worst = max(worst, try encoderExample3())`.
import Foundation
import Multihead

/// Runs Example 3; returns the largest difference from PyTorch (0 when the fixture is absent).
func encoderExample3(fixture: String = "Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors") throws -> Float {
    let layer = try TransformerEncoderLayer(dModel: 4, nhead: 2, dimFeedforward: 4)
    let x = try Tensor<Float>(randomNormal: [2, 5, 4], seed: 5)   // (L, N, E): batch_first is false
    print("Example 3: encoder layer output shape \(try layer(x).shape)")
    guard FileManager.default.fileExists(atPath: fixture) else { return 0 }
    try layer.loadSafetensors(path: fixture, prefix: "param.")     // PyTorch's state_dict names
    let file = try SafetensorsFile(path: fixture)
    let output = try layer(file.floatTensor("src"))
    let expected = try file.floatTensor("expected.output").scalars
    let difference = zip(output.scalars, expected).map { abs($0 - $1) }.max() ?? 0
    print("example3: max |multihead - PyTorch| = \(difference)")
    return difference
}
