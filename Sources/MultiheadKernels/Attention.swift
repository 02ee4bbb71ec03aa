import Foundation

/// An additive mask over one head's `[L, S]` scores, read through strides (a broadcast
/// dimension has stride 0). `bool` entries that are nonzero mean "masked" (adds -inf).
public struct AttentionMaskView: @unchecked Sendable {
    public enum Storage: @unchecked Sendable {
        case float(UnsafePointer<Float>)
        case bool(UnsafePointer<UInt8>)
    }
    public var storage: Storage
    public var rowStride: Int
    public var colStride: Int

    public init(storage: Storage, rowStride: Int, colStride: Int) {
        self.storage = storage
        self.rowStride = rowStride
        self.colStride = colStride
    }

    /// Adds this mask's row `l`, columns `s0..<s0+count`, to `scores`.
    @inlinable
    func add(row l: Int, columns s0: Int, count: Int, to scores: UnsafeMutablePointer<Float>) {
        switch storage {
        case .float(let p):
            let row = p + l * rowStride + s0 * colStride
            for j in 0..<count { scores[j] += row[j * colStride] }
        case .bool(let p):
            let row = p + l * rowStride + s0 * colStride
            for j in 0..<count where row[j * colStride] != 0 { scores[j] = -.infinity }
        }
    }
}

/// One `(batch, head)` attention problem.
///
/// `q` is `[L, D]`, already multiplied by the softmax scale; `k`, `v` are `[S, D]`; each row is
/// `D` contiguous floats, rows `*RowStride` apart (one head's columns of a projection buffer
/// that holds every head side by side). Keys `s < maskedKeys` take the masks; keys at and past
/// it (the appended `bias_k` and zero-attention keys) are never masked.
public struct AttentionProblem: @unchecked Sendable {
    public var q: UnsafePointer<Float>
    public var k: UnsafePointer<Float>
    public var v: UnsafePointer<Float>
    public var qRowStride: Int
    public var kRowStride: Int
    public var vRowStride: Int
    public var queryCount: Int
    public var keyCount: Int
    public var headDim: Int
    public var maskedKeys: Int
    /// Top-left causal: key `s` hidden from query `l` when `s > l`.
    public var causal: Bool
    /// `[L, maskedKeys]` additive or boolean mask, or `nil`.
    public var attnMask: AttentionMaskView?
    /// Key padding: read with `rowStride` 0, `[maskedKeys]`, or `nil`.
    public var paddingMask: AttentionMaskView?
    /// `K^T` `[D, S]` packed once for all query blocks, or nil to pack block by block.
    public var packedKeys: PackedMatrix?
    /// `V` packed once, one `[blockKeys, D]` matrix per key block (`FlashAttention.packValues`), or nil.
    public var packedValueBlocks: [PackedMatrix]?

    public init(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                qRowStride: Int, kRowStride: Int, vRowStride: Int, queryCount: Int, keyCount: Int, headDim: Int, maskedKeys: Int, causal: Bool,
                attnMask: AttentionMaskView?, paddingMask: AttentionMaskView?) {
        self.q = q
        self.k = k
        self.v = v
        self.qRowStride = qRowStride
        self.kRowStride = kRowStride
        self.vRowStride = vRowStride
        self.queryCount = queryCount
        self.keyCount = keyCount
        self.headDim = headDim
        self.maskedKeys = maskedKeys
        self.causal = causal
        self.attnMask = attnMask
        self.paddingMask = paddingMask
    }

    /// True when every key in `keys` is hidden by the causal mask from every query in `queries`.
    @inlinable
    func causallyHidden(queries: Range<Int>, keys: Range<Int>) -> Bool {
        causal && keys.lowerBound > queries.upperBound - 1 && keys.upperBound <= maskedKeys
    }
}
