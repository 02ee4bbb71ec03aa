import Foundation

extension BertModel {
    /// Checks a batch against the vocabulary sizes and the position table.
    func check(_ batch: TokenBatch) throws {
        guard batch.sequenceLength <= config.maxPositionEmbeddings else {
            throw MultiheadError.shape("input_ids has sequence length \(batch.sequenceLength), more than max_position_embeddings=\(config.maxPositionEmbeddings)")
        }
        if let (i, id) = batch.inputIds.enumerated().first(where: { $0.element < 0 || Int($0.element) >= config.vocabSize }) {
            throw MultiheadError.invalidArgument("input_ids[\(i / max(batch.sequenceLength, 1))][\(i % max(batch.sequenceLength, 1))] = \(id) is outside the vocabulary [0, \(config.vocabSize))")
        }
        if let (i, t) = batch.tokenTypeIds.enumerated().first(where: { $0.element < 0 || Int($0.element) >= config.typeVocabSize }) {
            throw MultiheadError.invalidArgument("token_type_ids[\(i / max(batch.sequenceLength, 1))][\(i % max(batch.sequenceLength, 1))] = \(t) is outside [0, \(config.typeVocabSize))")
        }
    }

    /// Runs embeddings and encoder; `body` reads the final `[N, L, H]` hidden states (zeros at
    /// masked positions) before the scratch memory is freed.
    func withHiddenStates<R>(_ batch: TokenBatch, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        try check(batch)
        let N = batch.batchSize, L = batch.sequenceLength, H = config.hiddenSize
        let rows = batch.attentionMask.enumerated().compactMap { $0.element ? Int32($0.offset) : nil }
        return try EncoderScratch.with(rows: N * L, E: H, dimFeedforward: config.intermediateSize,
                                       threads: engine.threadCount) { scratch in
            embed(batch, rows: rows, into: scratch.first)
            // Key padding mask: true (masked) where the attention mask is 0.
            let padding = batch.attentionMask.map { $0 ? UInt8(0) : 1 }
            return try padding.withUnsafeBufferPointer { mask in
                let view = TensorView(base: UnsafeRawPointer(mask.baseAddress ?? UnsafePointer(bitPattern: 64)!), element: .bool,
                                      shape: [N, L], strides: [L, 1])
                let plan = EncoderPlan(N: N, L: L, E: H, batched: true, srcMask: nil, keyPaddingMask: view, isCausal: false, rows: rows)
                return try body(try encoder.run(plan, scratch: scratch))
            }
        }
    }

    /// Embeddings of the real tokens, `(word + token type) + position` then the layer norm, into
    /// `[N, L, H]` rows (zeros elsewhere).
    func embed(_ batch: TokenBatch, rows: [Int32], into first: UnsafeMutablePointer<Float>) {
        let L = batch.sequenceLength, H = config.hiddenSize
        first.update(repeating: 0, count: max(batch.batchSize * L * H, 1))
        let norm = embeddingNorm.snapshot()
        let block = TransformerEncoderLayer.rowBlock
        wordEmbeddings.withUnsafeBufferPointer { words in
            positionEmbeddings.withUnsafeBufferPointer { positions in
                tokenTypeEmbeddings.withUnsafeBufferPointer { types in
                    engine.executor.run(tiles: (rows.count + block - 1) / block, parallel: rows.count * H >= 1 << 16) { tile, _ in
                        for i in tile * block ..< min((tile + 1) * block, rows.count) {
                            let r = Int(rows[i])
                            let out = first + r * H
                            let w = words.baseAddress! + Int(batch.inputIds[r]) * H
                            let t = types.baseAddress! + Int(batch.tokenTypeIds[r]) * H
                            let p = positions.baseAddress! + (r % L) * H
                            for j in 0..<H { out[j] = (w[j] + t[j]) + p[j] }
                            LayerNorm.normalizeRows(out, rows: 1, d: H, norm, into: out)
                        }
                    }
                }
            }
        }
    }

    /// The last hidden states: `output` `[N, L, H]`, any strides; 0 where the attention mask is 0.
    /// - Throws: `MultiheadError.shape` / `.invalidArgument` naming what does not fit.
    public func hiddenStates(_ batch: TokenBatch, output: MutableTensorView) throws {
        let expected = [batch.batchSize, batch.sequenceLength, config.hiddenSize]
        guard output.shape == expected, output.strides.count == 3 else {
            throw MultiheadError.shape("hidden_states must have shape \(expected), got \(output.shape) with \(output.strides.count) strides")
        }
        try withHiddenStates(batch) { hidden in
            scatterRows(hidden, shape: expected, strides: output.strides, into: output.base)
        }
    }

    /// The last hidden states `[N, L, H]` as a tensor.
    public func hiddenStates(_ batch: TokenBatch) throws -> Tensor<Float> {
        let shape = [batch.batchSize, batch.sequenceLength, config.hiddenSize]
        var values = [Float](repeating: 0, count: shape.reduce(1, *))
        try values.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!
            try hiddenStates(batch, output: MutableTensorView(base: base, shape: shape, strides: Tensor<Float>.contiguousStrides(shape)))
        }
        return Tensor(uncheckedShape: shape, scalars: values)
    }

    /// Sentence embeddings: the mean of the hidden states over the real tokens (as
    /// sentence-transformers' mean pooling: a sequence with no real token gives 0), then, with
    /// `normalize`, divided by `max(||v||, 1e-12)` (`torch.nn.functional.normalize`).
    /// - Parameter output: `[N, H]`, any strides.
    public func sentenceEmbeddings(_ batch: TokenBatch, normalize: Bool = true, output: MutableTensorView) throws {
        let N = batch.batchSize, L = batch.sequenceLength, H = config.hiddenSize
        guard output.shape == [N, H], output.strides.count == 2 else {
            throw MultiheadError.shape("embeddings must have shape \([N, H]), got \(output.shape) with \(output.strides.count) strides")
        }
        try withHiddenStates(batch) { hidden in
            var sum = [Double](repeating: 0, count: H)
            for n in 0..<N {
                for j in 0..<H { sum[j] = 0 }
                var count = 0
                for l in 0..<L where batch.attentionMask[n * L + l] {
                    let row = hidden + (n * L + l) * H
                    for j in 0..<H { sum[j] += Double(row[j]) }
                    count += 1
                }
                let mean = sum.map { Float($0 / Double(max(count, 1))) }
                var scale: Float = 1
                if normalize {
                    let norm = mean.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    scale = Float(1 / max(norm, 1e-12))
                }
                for j in 0..<H { output.base[n * output.strides[0] + j * output.strides[1]] = mean[j] * scale }
            }
        }
    }

    /// Sentence embeddings `[N, H]` as a tensor (see `sentenceEmbeddings(_:normalize:output:)`).
    public func sentenceEmbeddings(_ batch: TokenBatch, normalize: Bool = true) throws -> Tensor<Float> {
        let shape = [batch.batchSize, config.hiddenSize]
        var values = [Float](repeating: 0, count: shape.reduce(1, *))
        try values.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!
            try sentenceEmbeddings(batch, normalize: normalize, output: MutableTensorView(base: base, shape: shape, strides: [config.hiddenSize, 1]))
        }
        return Tensor(uncheckedShape: shape, scalars: values)
    }
}
