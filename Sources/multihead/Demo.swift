import ArgumentParser
import Foundation
import Multihead

/// The seed article's Examples 1 and 2, then the same examples with PyTorch's weights.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the seed document's examples and compare with PyTorch.")

    @Option(help: "Worker threads (0 = one per core).")
    var threads = 0

    @Option(help: "Folder of the PyTorch-made seed fixtures.")
    var fixtures = "Tests/MultiheadTests/Fixtures/seed"

    func format(_ values: ArraySlice<Float>) -> String {
        "[" + values.map { String(format: "% .4f", $0) }.joined(separator: ", ") + "]"
    }

    func run() throws {
        let engine = try Engine(threads: threads)
        print("multihead demo: \(engine.threadCount) thread(s)\n")

        print("Example 1: self-attention, embed_dim=4, num_heads=2, x of shape (L=2, N=5, E=4)")
        print("  (batch_first=false: the first dimension is the sequence, not the batch)")
        let x = try Tensor<Float>(randomNormal: [2, 5, 4], seed: 1)
        let attention = try MultiheadAttention(embedDim: 4, numHeads: 2, engine: engine)
        let (output, weights) = try attention(x, x, x)
        print("  attn_output shape \(output.shape), attn_output_weights shape \(weights!.shape)")
        print("  attn_output[0, 0] = \(format(output.scalars[0..<4]))")
        print("  weights[0]        = \(format(weights!.scalars[0..<4]))  (rows sum to 1)\n")

        print("Example 2: kdim=6, vdim=4, qdim=8 (qdim is this engine's extension)")
        let q = try Tensor<Float>(randomNormal: [2, 5, 8], seed: 2)
        let k = try Tensor<Float>(randomNormal: [2, 5, 6], seed: 3)
        let v = try Tensor<Float>(randomNormal: [2, 5, 4], seed: 4)
        let cross = try MultiheadAttention(embedDim: 4, numHeads: 2, kdim: 6, vdim: 4, qdim: 8, engine: engine)
        let (crossOutput, _) = try cross(q, k, v)
        print("  attn_output shape \(crossOutput.shape)")
        print("  attn_output[0, 0] = \(format(crossOutput.scalars[0..<4]))\n")

        for name in ["example1", "example2"] {
            let path = "\(fixtures)/\(name).safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                print("(\(path) not found: run from the repository root to compare with PyTorch)")
                continue
            }
            let file = try SafetensorsFile(path: path)
            let config = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8)) as! [String: Any]
            let module = try MultiheadAttention(embedDim: config["embed_dim"] as! Int, numHeads: config["num_heads"] as! Int,
                                                kdim: config["kdim"] as? Int, vdim: config["vdim"] as? Int, engine: engine)
            try module.loadSafetensors(path: path, prefix: "param.")
            let (out, _) = try module(file.floatTensor("query"), file.floatTensor("key"), file.floatTensor("value"))
            let expected = try file.floatTensor("expected.output").scalars
            let difference = zip(out.scalars, expected).map { abs($0 - $1) }.max() ?? 0
            print("\(name) with PyTorch \(file.metadata["torch_version"] ?? "?")'s weights: max |multihead - PyTorch| = \(difference)")
        }
    }
}
