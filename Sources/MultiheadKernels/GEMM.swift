/// Cache sizes (bytes) that GEMM blocking is derived from; the runtime fills them from the topology.
public struct CacheSizes: Sendable, Equatable {
    public var l1d: Int
    public var l2: Int
    public var l3: Int
    public init(l1d: Int = 32 << 10, l2: Int = 1 << 20, l3: Int = 32 << 20) {
        self.l1d = l1d
        self.l2 = l2
        self.l3 = l3
    }
}

/// A `B` operand `[k x n]` packed once (weights are constant at inference) into the panel layout
/// that the micro-kernel reads.
public final class PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    // CONTRACT STUB: the kernels issue replaces the storage with real NR-panels.
    @usableFromInline let storage: [Float]

    /// Packs logical `b` `[k x n]` (any strides).
    public init(_ b: MatrixView, cacheSizes: CacheSizes = CacheSizes()) {
        k = b.rows
        n = b.cols
        var s = [Float](repeating: 0, count: k * n)
        for i in 0..<k { for j in 0..<n { s[i * n + j] = b[i, j] } }
        storage = s
    }
}

/// Per-thread scratch for packing `A` (and unpacked `B`) panels. Not thread-safe: one per worker.
public final class GEMMWorkspace: @unchecked Sendable {
    public let cacheSizes: CacheSizes
    public init(cacheSizes: CacheSizes = CacheSizes()) { self.cacheSizes = cacheSizes }
}

/// Single-precision matrix multiply with a fused epilogue.
///
/// Every variant computes, for each output element,
/// `C[i, j] = scale * (sum_p A[i, p] * B[p, j] + bias[j]) + (accumulate ? C[i, j] : 0)`
/// with a reduction order that depends only on the shapes (never on threads), so results are
/// bit-identical for any partitioning of the calls.
public enum GEMM {
    /// `C[m x n] (+)= scale * (A[m x k] * B[k x columns] + bias)`, `B` pre-packed.
    /// - Parameters:
    ///   - a: `[m x k]`, any strides.
    ///   - b: packed `[k x n_total]`; only `columns` of it are used, `C` has `columns.count` columns.
    ///   - columns: the column range of `b` (and of `bias`) to compute.
    ///   - bias: `nil` or a vector indexed by the column of `b` (so `bias[columns.lowerBound + j]`).
    ///   - c: `[m x columns.count]`, any strides.
    public static func multiply(
        _ a: MatrixView, _ b: PackedMatrix, columns: Range<Int>, bias: UnsafePointer<Float>? = nil,
        scale: Float = 1, accumulate: Bool = false, into c: MutableMatrixView, workspace: GEMMWorkspace
    ) {
        precondition(a.cols == b.k && c.rows == a.rows && c.cols == columns.count)
        b.storage.withUnsafeBufferPointer { bs in
            let bv = MatrixView(base: bs.baseAddress! + columns.lowerBound, rows: b.k, cols: columns.count, rowStride: b.n)
            let biasView = bias.map { $0 + columns.lowerBound }
            multiply(a, bv, bias: biasView, scale: scale, accumulate: accumulate, into: c, workspace: workspace)
        }
    }

    /// `C[m x n] (+)= scale * (A[m x k] * B[k x n] + bias)`, `B` unpacked (any strides), for
    /// in-cache products such as attention's `Q K^T` and `P V`.
    /// - Parameter bias: `nil` or a vector of `n`.
    public static func multiply(
        _ a: MatrixView, _ b: MatrixView, bias: UnsafePointer<Float>? = nil,
        scale: Float = 1, accumulate: Bool = false, into c: MutableMatrixView, workspace: GEMMWorkspace
    ) {
        precondition(a.cols == b.rows && c.rows == a.rows && c.cols == b.cols)
        for i in 0..<a.rows {
            for j in 0..<b.cols {
                var sum: Float = 0
                for p in 0..<a.cols { sum += a[i, p] * b[p, j] }
                if let bias { sum += bias[j] }
                sum *= scale
                c[i, j] = accumulate ? c[i, j] + sum : sum
            }
        }
    }
}
