// The seed article's Examples 1 and 2 in Swift, checked against PyTorch's outputs for the
// same weights (fixtures made by scripts/make_fixtures.py). Run: swift run SeedExamples
import Foundation
import Multihead

func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

do {
    // Example 1: self-attention. With batch_first=false the layout is (L, N, E): x of shape
    // (2, 5, 4) is 2 positions of a batch of 5 (the article calls the 2 the batch: it is not).
    let x = try Tensor<Float>(randomNormal: [2, 5, 4], seed: 1)
    let attention = try MultiheadAttention(embedDim: 4, numHeads: 2)
    let (output, weights) = try attention(x, x, x)
    print("Example 1: output shape \(output.shape), weights shape \(weights!.shape)")

    // Example 2: keys and values with their own sizes (kdim, vdim), and a query of 8 features:
    // qdim is not a PyTorch argument; here it sizes q_proj_weight as (embed_dim, qdim).
    let q = try Tensor<Float>(randomNormal: [2, 5, 8], seed: 2)
    let k = try Tensor<Float>(randomNormal: [2, 5, 6], seed: 3)
    let v = try Tensor<Float>(randomNormal: [2, 5, 4], seed: 4)
    let crossAttention = try MultiheadAttention(embedDim: 4, numHeads: 2, kdim: 6, vdim: 4, qdim: 8)
    let (crossOutput, _) = try crossAttention(q, k, v, needWeights: false)
    print("Example 2: output shape \(crossOutput.shape), first row \(crossOutput.scalars.prefix(4).map { String(format: "%.4f", $0) })")

    // The same examples with PyTorch's weights and inputs: the outputs must match PyTorch's.
    var worst: Float = 0
    for name in ["example1", "example2"] {
        let path = "Tests/MultiheadTests/Fixtures/seed/\(name).safetensors"
        guard FileManager.default.fileExists(atPath: path) else { continue }
        let file = try SafetensorsFile(path: path)
        let config = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8)) as! [String: Any]
        let module = try MultiheadAttention(embedDim: config["embed_dim"] as! Int, numHeads: config["num_heads"] as! Int,
                                            kdim: config["kdim"] as? Int, vdim: config["vdim"] as? Int)
        try module.loadSafetensors(path: path, prefix: "param.")
        let (out, _) = try module(file.floatTensor("query"), file.floatTensor("key"), file.floatTensor("value"))
        let difference = maxDifference(out.scalars, try file.floatTensor("expected.output").scalars)
        worst = max(worst, difference)
        print("\(name): max |multihead - PyTorch| = \(difference)")
    }
    worst = max(worst, try encoderExample3())
    if worst > 1e-5 {
        print("FAILED: differs from PyTorch")
        exit(1)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
