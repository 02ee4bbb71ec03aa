import Foundation

/// An encoder call resolved to sizes: the source held contiguous, batch-major `[N, L, E]`
/// (whatever the caller's layout), and the masks as given.
struct EncoderPlan {
    var N: Int
    var L: Int
    var E: Int
    var batched: Bool
    var srcMask: TensorView?
    var keyPaddingMask: TensorView?
    var isCausal: Bool
    /// Rows (`n * L + l`) that are computed; nil = all. Rows left out (padding the caller does not
    /// need, BERT only) are written as zeros.
    var rows: [Int32]?

    var rowCount: Int { N * L }
    var computedRowCount: Int { rows?.count ?? rowCount }

    /// The contiguous `[N, L, E]` buffer `base` as the attention module reads it: `[N, L, E]`
    /// with batchFirst, `[L, N, E]` without (strided, no copy), `[L, E]` unbatched.
    func attentionShape(batchFirst: Bool) -> (shape: [Int], strides: [Int]) {
        if !batched { return ([L, E], [E, 1]) }
        return batchFirst ? ([N, L, E], [L * E, E, 1]) : ([L, N, E], [E, L * E, 1])
    }

    /// Checks `src` and the masks of an encoder call; the argument names are the caller's.
    ///
    /// - Parameters:
    ///   - src: `[L, N, E]`, `[N, L, E]` (batchFirst) or unbatched `[L, E]`, float32.
    ///   - mask: `[L, L]` or `[N * nhead, L, L]`, bool or float32.
    ///   - keyPaddingMask: `[N, L]` (unbatched `[L]`), bool or float32.
    static func make(src: TensorView, mask: TensorView?, keyPaddingMask: TensorView?, isCausal: Bool,
                     dModel: Int, nhead: Int, batchFirst: Bool, maskName: String) throws -> EncoderPlan {
        guard src.element == .float32 else { throw MultiheadError.shape("src must be float32, got \(src.element)") }
        guard src.strides.count == src.rank else {
            throw MultiheadError.shape("src has shape \(src.shape) but \(src.strides.count) strides")
        }
        guard src.rank == 2 || src.rank == 3 else {
            throw MultiheadError.shape("src should be unbatched 2-D (L, E) or batched 3-D \(batchFirst ? "(N, L, E)" : "(L, N, E)") but has shape \(src.shape)")
        }
        guard src.shape.allSatisfy({ $0 >= 0 }) else { throw MultiheadError.shape("src has a negative dimension: \(src.shape)") }
        guard src.shape[src.rank - 1] == dModel else {
            throw MultiheadError.shape("src of shape \(src.shape) has \(src.shape[src.rank - 1]) features but the layer expects d_model=\(dModel)")
        }
        let batched = src.rank == 3
        let N = batched ? src.shape[batchFirst ? 0 : 1] : 1
        let L = batched ? src.shape[batchFirst ? 1 : 0] : src.shape[0]
        _ = try checkedProduct([N, L, dModel, 4], "src")
        func check(_ m: TensorView?, _ name: String, _ allowed: [[Int]]) throws {
            guard let m else { return }
            guard m.strides.count == m.rank else { throw MultiheadError.shape("\(name) has shape \(m.shape) but \(m.strides.count) strides") }
            guard allowed.contains(m.shape) else {
                let expected = allowed.map { "\($0)" }.joined(separator: " or ")
                throw MultiheadError.shape("\(name) must have shape \(expected) for src of shape \(src.shape), got \(m.shape)")
            }
        }
        try check(mask, maskName, [[L, L], [N * nhead, L, L]])
        try check(keyPaddingMask, "src_key_padding_mask", [batched ? [N, L] : [L]])
        return EncoderPlan(N: N, L: L, E: dModel, batched: batched, srcMask: mask, keyPaddingMask: keyPaddingMask,
                           isCausal: isCausal, rows: nil)
    }

    /// Copies `src` (any layout) into contiguous batch-major `[N, L, E]`.
    func gather(_ src: TensorView, batchFirst: Bool, into dest: UnsafeMutablePointer<Float>) {
        let (shape, strides) = contiguousOrder(src.shape, src.strides, batchFirst: batchFirst)
        gatherRows(src.floats, shape: shape, strides: strides, into: dest)
    }

    /// Copies contiguous batch-major `[N, L, E]` into `output` (the caller's layout).
    func scatter(_ source: UnsafePointer<Float>, into output: MutableTensorView, batchFirst: Bool) {
        let (shape, strides) = contiguousOrder(output.shape, output.strides, batchFirst: batchFirst)
        scatterRows(source, shape: shape, strides: strides, into: output.base)
    }

    /// The caller's shape and strides reordered to (batch, sequence, feature).
    private func contiguousOrder(_ shape: [Int], _ strides: [Int], batchFirst: Bool) -> ([Int], [Int]) {
        if !batched || batchFirst { return (shape, strides) }
        return ([shape[1], shape[0], shape[2]], [strides[1], strides[0], strides[2]])
    }
}
