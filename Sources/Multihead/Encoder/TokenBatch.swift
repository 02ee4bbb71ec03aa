/// A batch of token sequences, right-padded to one length: what `BertModel` runs on.
///
/// `inputIds`, `attentionMask` and `tokenTypeIds` are `[batchSize, sequenceLength]` row-major.
/// `attentionMask[i] == true` marks a real token; masked positions are ignored as keys and in
/// pooling, and their hidden states are 0.
public struct TokenBatch: Sendable, Equatable {
    public let batchSize: Int
    public let sequenceLength: Int
    public let inputIds: [Int32]
    public let attentionMask: [Bool]
    public let tokenTypeIds: [Int32]

    /// A batch from flat arrays.
    /// - Parameters:
    ///   - attentionMask: nil = every token real.
    ///   - tokenTypeIds: nil = all 0.
    /// - Throws: `MultiheadError.shape` when a count is not `batchSize * sequenceLength`.
    public init(batchSize: Int, sequenceLength: Int, inputIds: [Int32], attentionMask: [Bool]? = nil,
                tokenTypeIds: [Int32]? = nil) throws {
        guard batchSize >= 0, sequenceLength >= 0 else {
            throw MultiheadError.shape("input_ids shape [\(batchSize), \(sequenceLength)] has a negative size")
        }
        let count = try checkedProduct([batchSize, sequenceLength], "input_ids")
        for (name, n) in [("input_ids", inputIds.count), ("attention_mask", attentionMask?.count ?? count),
                          ("token_type_ids", tokenTypeIds?.count ?? count)] where n != count {
            throw MultiheadError.shape("\(name) has \(n) elements, expected \(count) for shape [\(batchSize), \(sequenceLength)]")
        }
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.inputIds = inputIds
        self.attentionMask = attentionMask ?? [Bool](repeating: true, count: count)
        self.tokenTypeIds = tokenTypeIds ?? [Int32](repeating: 0, count: count)
    }

    /// A batch of sequences of any lengths, right-padded with `padTokenId` (mask false).
    /// - Throws: `MultiheadError.invalidArgument` for an id outside `Int32`.
    public init(sequences: [[Int]], tokenTypeIds: [[Int]]? = nil, padTokenId: Int = 0) throws {
        let length = sequences.map(\.count).max() ?? 0
        var ids: [Int32] = [], mask: [Bool] = [], types: [Int32] = []
        if let tokenTypeIds, tokenTypeIds.map(\.count) != sequences.map(\.count) {
            throw MultiheadError.shape("token_type_ids lengths \(tokenTypeIds.map(\.count)) differ from input_ids lengths \(sequences.map(\.count))")
        }
        func narrow(_ value: Int, _ name: String) throws -> Int32 {
            guard let v = Int32(exactly: value) else { throw MultiheadError.invalidArgument("\(name) value \(value) is out of range") }
            return v
        }
        for (i, sequence) in sequences.enumerated() {
            for (j, id) in sequence.enumerated() {
                ids.append(try narrow(id, "input_ids"))
                types.append(try narrow(tokenTypeIds?[i][j] ?? 0, "token_type_ids"))
            }
            let padding = length - sequence.count
            ids += [Int32](repeating: try narrow(padTokenId, "pad_token_id"), count: padding)
            types += [Int32](repeating: 0, count: padding)
            mask += [Bool](repeating: true, count: sequence.count) + [Bool](repeating: false, count: padding)
        }
        try self.init(batchSize: sequences.count, sequenceLength: length, inputIds: ids, attentionMask: mask, tokenTypeIds: types)
    }

    /// Real tokens of sequence `n`.
    public func length(_ n: Int) -> Int {
        attentionMask[n * sequenceLength ..< (n + 1) * sequenceLength].reduce(0) { $0 + ($1 ? 1 : 0) }
    }
}
