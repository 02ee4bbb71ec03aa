import MultiheadKernels
import MultiheadRuntime

/// An attention call's size, for planning: which node and worker takes which tiles.
public struct PlanShape: Codable, Hashable, Sendable {
    /// `N`, batch size.
    public var batch: Int
    /// `H`, number of heads.
    public var heads: Int
    /// `L`, query sequence length.
    public var seqLen: Int
    /// `S`, key/value sequence length.
    public var sourceLen: Int
    /// `E`, embedding size.
    public var embedDim: Int
    /// Whether the attention weights are computed.
    public var needWeights: Bool

    /// - Parameters:
    ///   - batch: `N`, at least 1.
    ///   - heads: `H`, at least 1.
    ///   - seqLen: `L`, at least 1.
    ///   - sourceLen: `S`, at least 1; nil means `L` (self-attention).
    ///   - embedDim: `E`, a multiple of `H`; nil means `64 * H`.
    ///   - needWeights: whether weights are computed.
    /// - Throws: `MultiheadError.invalidArgument` for sizes out of range, `.outOfMemory` when
    ///   the sizes' products overflow.
    public init(batch: Int, heads: Int, seqLen: Int, sourceLen: Int? = nil, embedDim: Int? = nil,
                needWeights: Bool = false) throws {
        let sourceLen = sourceLen ?? seqLen
        for (name, value) in [("batch", batch), ("heads", heads), ("seq_len", seqLen), ("source_len", sourceLen)] {
            guard value >= 1 else { throw MultiheadError.invalidArgument("plan: \(name) must be >= 1, got \(value)") }
        }
        let (defaultE, overflow) = heads.multipliedReportingOverflow(by: 64)
        guard let embedDim = embedDim ?? (overflow ? nil : defaultE) else {
            throw MultiheadError.outOfMemory("plan: 64 * heads overflows")
        }
        guard embedDim >= 1, embedDim % heads == 0 else {
            throw MultiheadError.invalidArgument("plan: embed_dim (\(embedDim)) must be a positive multiple of heads (\(heads))")
        }
        _ = try checkedProduct([batch, max(seqLen, sourceLen), 3, embedDim], "plan: N x max(L, S) x 3E")
        _ = try checkedProduct([batch, heads, seqLen, 2], "plan: N x H x L")
        (self.batch, self.heads, self.seqLen, self.sourceLen, self.embedDim, self.needWeights)
            = (batch, heads, seqLen, sourceLen, embedDim, needWeights)
    }

    enum CodingKeys: String, CodingKey {
        case batch, heads, seqLen = "seq_len", sourceLen = "source_len", embedDim = "embed_dim", needWeights = "need_weights"
    }
}

/// One parallel phase of a forward call: its tiles, and whether it runs on the workers.
struct AttentionPhase {
    /// `projections`, `kv_packing`, `attention` or `output`.
    var name: String
    /// What each segment is, e.g. `["q", "k", "v"]`.
    var segmentNames: [String]
    var space: TileSpace
    /// False when the phase runs on the calling thread alone (too little work).
    var parallel: Bool
}

extension PlanShape {
    /// Heads per group under `scratchLimit` (`MultiheadAttention.headsPerGroup`); self-attention
    /// is taken to use one fused `in_proj_weight` when `S == L`.
    func headsPerGroup(scratchLimit: Int) -> Int {
        guard let perHead = MultiheadAttention.scratchBytesPerHead(N: batch, L: seqLen, keyCount: sourceLen,
                                                                   headDim: embedDim / heads, fusedProjection: sourceLen == seqLen)
        else { return 1 }
        return MultiheadAttention.headsPerGroup(bytesPerHead: perHead, heads: heads, limit: scratchLimit)
    }

    /// The phases `MultiheadAttention.run` executes for this shape on an engine with `threads`
    /// workers and `scratchLimit`, with the same tile numbering, for one group of heads (each
    /// group runs them in turn; the last group may have fewer heads): projections (job, batch,
    /// row block); K/V packing (batch, head); attention (batch, head, query block), or (batch,
    /// query block) running the heads in order when those tiles also write the weights; output
    /// (batch, row block x column block), then (batch, query block) of weights when a separate
    /// pass computes them. Self-attention is taken to use one fused `in_proj_weight` when `S == L`.
    func phases(threads: Int, scratchLimit: Int) -> [AttentionPhase] {
        let (N, H, L, S, E) = (batch, heads, seqLen, sourceLen, embedDim)
        func blocks(_ count: Int, _ size: Int) -> Int { (count + size - 1) / size }
        // The same estimate as `MultiheadAttention.run`: below it, everything runs on the caller.
        let work = N.multipliedReportingOverflow(by: L &* E &* (E + E) &+ S &* E &* (E + E) &+ 2 &* L &* S &* E)
        let parallel = work.overflow || work.partialValue < 0 || work.partialValue >= MultiheadAttention.parallelWorkThreshold
        let G = headsPerGroup(scratchLimit: scratchLimit)
        let rowBlock = ProjectionJob.rowBlock
        let projections: [(String, Int)] = S == L && G == H ? [("qkv", blocks(L, rowBlock))]
            : [("q", blocks(L, rowBlock)), ("k", blocks(S, rowBlock)), ("v", blocks(S, rowBlock))]
        let queryBlocks = blocks(L, FlashAttention.blockQueries)
        let prepack = L > FlashAttention.blockQueries
        let fusedWeights = needWeights && MultiheadAttention.weightsFromAttentionTiles(
            N: N, queryBlocks: queryBlocks, keyCount: S, parallel: parallel, threads: threads)
        let outputBlocks = MultiheadAttention.outputBlocks(L: L, E: E)
        var output: [(String, TileSpace.Segment)] = [("rows x columns", .init(batches: N, tilesPerBatch: outputBlocks.rows * outputBlocks.columns))]
        if needWeights && !fusedWeights { output.append(("weights", .init(batches: N, tilesPerBatch: queryBlocks))) }
        let attention = fusedWeights
            ? AttentionPhase(name: "attention", segmentNames: ["query blocks (heads in order, with weights)"],
                             space: TileSpace(batches: N, tilesPerBatch: queryBlocks), parallel: parallel)
            : AttentionPhase(name: "attention", segmentNames: ["heads x query blocks"],
                             space: TileSpace(batches: N, tilesPerBatch: G * queryBlocks), parallel: parallel)
        return [
            AttentionPhase(name: "projections", segmentNames: projections.map(\.0),
                           space: TileSpace(segments: projections.map { .init(batches: N, tilesPerBatch: $0.1) }), parallel: parallel),
            AttentionPhase(name: "kv_packing", segmentNames: ["heads"], space: TileSpace(batches: N, tilesPerBatch: G),
                           parallel: parallel && prepack),
            attention,
            AttentionPhase(name: "output", segmentNames: output.map(\.0), space: TileSpace(segments: output.map(\.1)),
                           parallel: parallel),
        ]
    }
}
