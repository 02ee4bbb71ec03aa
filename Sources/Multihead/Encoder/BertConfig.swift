import Foundation

/// The fields of a Hugging Face BERT `config.json` that inference needs.
public struct BertConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var numAttentionHeads: Int
    public var numHiddenLayers: Int
    public var intermediateSize: Int
    public var hiddenAct: Activation
    public var layerNormEps: Double
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var vocabSize: Int
    public var padTokenId: Int
    /// `hidden_dropout_prob`: kept, never applied.
    public var hiddenDropoutProb: Float

    public init(hiddenSize: Int, numAttentionHeads: Int, numHiddenLayers: Int, intermediateSize: Int,
                hiddenAct: Activation = .gelu, layerNormEps: Double = 1e-12, maxPositionEmbeddings: Int = 512,
                typeVocabSize: Int = 2, vocabSize: Int, padTokenId: Int = 0, hiddenDropoutProb: Float = 0.1) {
        self.hiddenSize = hiddenSize
        self.numAttentionHeads = numAttentionHeads
        self.numHiddenLayers = numHiddenLayers
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.vocabSize = vocabSize
        self.padTokenId = padTokenId
        self.hiddenDropoutProb = hiddenDropoutProb
    }

    /// Reads `config.json` of a BERT-family checkpoint (`model_type` "bert", absolute positions).
    /// - Throws: `MultiheadError.io` (unreadable), `.format` (not JSON, a field missing or of the
    ///   wrong type), `.unsupported` (another architecture, activation or position embedding).
    public init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MultiheadError.io("cannot read '\(path)': \(error.localizedDescription)")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data), let object = json as? [String: Any] else {
            throw MultiheadError.format("'\(path)' is not a JSON object")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = object[key] else {
                if let value { return value }
                throw MultiheadError.format("'\(path)' has no '\(key)'")
            }
            guard let number = raw as? NSNumber, number.doubleValue == number.doubleValue.rounded(),
                  number.doubleValue > 0 || (key == "pad_token_id" && number.doubleValue >= 0), number.doubleValue < 1e12 else {
                throw MultiheadError.format("'\(path)': '\(key)' must be a positive integer, got \(raw)")
            }
            return number.intValue
        }
        if let type = object["model_type"] as? String, !["bert", "minilm"].contains(type) {
            throw MultiheadError.unsupported("'\(path)': model_type '\(type)' is not supported (BERT-family encoders only: model_type 'bert')")
        }
        if let positions = object["position_embedding_type"] as? String, positions != "absolute" {
            throw MultiheadError.unsupported("'\(path)': position_embedding_type '\(positions)' is not supported (only 'absolute')")
        }
        let act = (object["hidden_act"] as? String) ?? "gelu"
        guard let activation = Activation(rawValue: act) else {
            throw MultiheadError.unsupported("'\(path)': hidden_act '\(act)' is not supported (only 'gelu' and 'relu')")
        }
        let eps = (object["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-12
        self.init(hiddenSize: try int("hidden_size"), numAttentionHeads: try int("num_attention_heads"),
                  numHiddenLayers: try int("num_hidden_layers"), intermediateSize: try int("intermediate_size"),
                  hiddenAct: activation, layerNormEps: eps,
                  maxPositionEmbeddings: try int("max_position_embeddings", default: 512),
                  typeVocabSize: try int("type_vocab_size", default: 2), vocabSize: try int("vocab_size"),
                  padTokenId: (object["pad_token_id"] is NSNumber) ? try int("pad_token_id") : 0,
                  hiddenDropoutProb: (object["hidden_dropout_prob"] as? NSNumber)?.floatValue ?? 0.1)
        guard hiddenSize % numAttentionHeads == 0 else {
            throw MultiheadError.format("'\(path)': hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
    }

    /// The encoder layer this checkpoint's layers are: post-norm, batch-first.
    public func layerConfig() throws -> TransformerEncoderLayerConfig {
        try TransformerEncoderLayerConfig(dModel: hiddenSize, nhead: numAttentionHeads, dimFeedforward: intermediateSize,
                                          dropout: hiddenDropoutProb, activation: hiddenAct, layerNormEps: layerNormEps,
                                          batchFirst: true, normFirst: false, bias: true)
    }
}
