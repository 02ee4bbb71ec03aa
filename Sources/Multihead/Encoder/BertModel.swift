import Foundation

/// A BERT-family encoder loaded from a Hugging Face checkpoint folder (`config.json` +
/// `model.safetensors`), such as sentence-transformers' all-MiniLM-L6-v2.
///
/// Embeddings (word + token type + position, then a layer norm), then the encoder layers, each
/// a post-norm GELU `TransformerEncoderLayer` with key padding from the attention mask. Hugging
/// Face's names are mapped to the engine's: `encoder.layer.{i}.attention.self.{query,key,value}`
/// become `layers.{i}.self_attn.in_proj_weight`/`in_proj_bias` (stacked in that order),
/// `attention.output.dense` `self_attn.out_proj`, `attention.output.LayerNorm` `norm1`,
/// `intermediate.dense` `linear1`, `output.dense` `linear2`, `output.LayerNorm` `norm2`.
/// Checkpoints of `BertFor...` heads (names under `bert.`) load too. Thread-safe.
public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    public let engine: Engine
    /// The encoder layers, with the checkpoint's parameters under the engine's names.
    public let encoder: TransformerEncoder
    let embeddingNorm: LayerNorm
    /// `[vocab, H]`, `[max_positions, H]`, `[type_vocab, H]`.
    let wordEmbeddings: [Float]
    let positionEmbeddings: [Float]
    let tokenTypeEmbeddings: [Float]

    /// Loads `folder/config.json` and `folder/model.safetensors`.
    /// - Throws: `MultiheadError.io` (a file cannot be read), `.format` (malformed files),
    ///   `.invalidArgument` (a tensor missing, naming it), `.shape` (a tensor of the wrong shape),
    ///   `.unsupported` (another architecture).
    public convenience init(folder: String, engine: Engine = .shared) throws {
        let url = URL(fileURLWithPath: folder)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MultiheadError.io("model folder '\(folder)' does not exist or is not a folder")
        }
        let config = try BertConfig(path: url.appendingPathComponent("config.json").path)
        let weights = try SafetensorsFile(path: url.appendingPathComponent("model.safetensors").path)
        try self.init(config: config, weights: weights, engine: engine)
    }

    /// A model from a configuration and a checkpoint's tensors (Hugging Face names).
    public init(config: BertConfig, weights: SafetensorsFile, engine: Engine = .shared) throws {
        self.config = config
        self.engine = engine
        let H = config.hiddenSize
        let base = ["", "bert.", "model."].first { weights.entries[$0 + "embeddings.word_embeddings.weight"] != nil }
        guard let base else {
            throw MultiheadError.invalidArgument("'\(weights.path)' has no tensor 'embeddings.word_embeddings.weight' (nor under 'bert.'): not a BERT checkpoint")
        }
        func tensor(_ name: String, _ shape: [Int], alternative: String? = nil) throws -> [Float] {
            var key = base + name
            if weights.entries[key] == nil, let alternative, weights.entries[base + alternative] != nil { key = base + alternative }
            let t = try weights.floatTensor(key)
            guard t.shape == shape else {
                throw MultiheadError.shape("tensor '\(key)' in '\(weights.path)' has shape \(t.shape), expected \(shape) from config.json")
            }
            return t.scalars
        }
        wordEmbeddings = try tensor("embeddings.word_embeddings.weight", [config.vocabSize, H])
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [config.maxPositionEmbeddings, H])
        tokenTypeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", [config.typeVocabSize, H])
        embeddingNorm = try LayerNorm(H, eps: config.layerNormEps, engine: engine)
        // Old checkpoints name layer norm parameters gamma and beta.
        func norm(_ prefix: String) throws -> (weight: [Float], bias: [Float]) {
            (try tensor(prefix + ".weight", [H], alternative: prefix + ".gamma"),
             try tensor(prefix + ".bias", [H], alternative: prefix + ".beta"))
        }
        let embeddingNormValues = try norm("embeddings.LayerNorm")
        try embeddingNorm.setParameter("weight", Tensor(uncheckedShape: [H], scalars: embeddingNormValues.weight))
        try embeddingNorm.setParameter("bias", Tensor(uncheckedShape: [H], scalars: embeddingNormValues.bias))

        encoder = try TransformerEncoder(config: try config.layerConfig(), numLayers: config.numHiddenLayers, engine: engine)
        let F = config.intermediateSize
        var dict: [String: Tensor<Float>] = [:]
        for i in 0..<config.numHiddenLayers {
            let p = "encoder.layer.\(i)."
            let to = "layers.\(i)."
            func put(_ name: String, _ shape: [Int], _ values: [Float]) { dict[to + name] = Tensor(uncheckedShape: shape, scalars: values) }
            let q = try tensor(p + "attention.self.query.weight", [H, H])
            let k = try tensor(p + "attention.self.key.weight", [H, H])
            let v = try tensor(p + "attention.self.value.weight", [H, H])
            put("self_attn.in_proj_weight", [3 * H, H], q + k + v)
            let qb = try tensor(p + "attention.self.query.bias", [H])
            let kb = try tensor(p + "attention.self.key.bias", [H])
            let vb = try tensor(p + "attention.self.value.bias", [H])
            put("self_attn.in_proj_bias", [3 * H], qb + kb + vb)
            put("self_attn.out_proj.weight", [H, H], try tensor(p + "attention.output.dense.weight", [H, H]))
            put("self_attn.out_proj.bias", [H], try tensor(p + "attention.output.dense.bias", [H]))
            let n1 = try norm(p + "attention.output.LayerNorm")
            put("norm1.weight", [H], n1.weight)
            put("norm1.bias", [H], n1.bias)
            put("linear1.weight", [F, H], try tensor(p + "intermediate.dense.weight", [F, H]))
            put("linear1.bias", [F], try tensor(p + "intermediate.dense.bias", [F]))
            put("linear2.weight", [H, F], try tensor(p + "output.dense.weight", [H, F]))
            put("linear2.bias", [H], try tensor(p + "output.dense.bias", [H]))
            let n2 = try norm(p + "output.LayerNorm")
            put("norm2.weight", [H], n2.weight)
            put("norm2.bias", [H], n2.bias)
        }
        try encoder.loadStateDict(dict)
    }

    /// The embedding size of hidden states and sentence embeddings.
    public var hiddenSize: Int { config.hiddenSize }
}
