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
///
/// Layout: depth blocks of `KC` rows, each holding every NR-column panel as `kc x NR` row-major
/// (zero-padded past column `n`); see `GEMMPanels`. The micro-kernel (and so NR) and KC are
/// fixed here, from `KernelISA.selected` and `cacheSizes`; a multiply with this matrix uses its
/// blocking table whatever the workspace's.
public final class PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    let kernel: MicroKernel
    let blocking: GEMMBlocking
    private let storage: GEMMScratchBuffer

    /// Packs logical `b` `[k x n]` (any strides).
    public convenience init(_ b: MatrixView, cacheSizes: CacheSizes = CacheSizes()) {
        self.init(b, cacheSizes: cacheSizes, isa: .selected)
    }

    /// Packs for the micro-kernel of `isa` (tests run every variant).
    convenience init(_ b: MatrixView, cacheSizes: CacheSizes, isa: KernelISA) {
        let kernel = MicroKernel(isa: isa)
        self.init(b, kernel: kernel, blocking: GEMMBlocking(cacheSizes: cacheSizes, kernel: kernel))
    }

    /// Packs with an explicit blocking table (tests and tuning).
    init(_ b: MatrixView, kernel: MicroKernel, blocking: GEMMBlocking) {
        precondition(b.rows >= 0 && b.cols >= 0 && blocking.mr == kernel.mr && blocking.nr == kernel.nr)
        k = b.rows
        n = b.cols
        self.kernel = kernel
        self.blocking = blocking
        let panelCount = (n + blocking.nr - 1) / blocking.nr
        var storage = GEMMScratchBuffer(capacity: k * panelCount * blocking.nr)
        GEMM.packB(b, columns: 0..<n, kc: blocking.kc, kernel: kernel, into: storage.reserve(0))
        self.storage = storage
    }

    deinit { storage.deallocate() }

    /// The packed panels; valid while `self` is alive.
    var panels: GEMMPanels {
        GEMMPanels(base: storage.base, panelCount: (n + blocking.nr - 1) / blocking.nr, nr: blocking.nr)
    }
}

/// Per-thread scratch for packing `A` (and unpacked `B`) panels. Not thread-safe: one per worker.
public final class GEMMWorkspace: @unchecked Sendable {
    public let cacheSizes: CacheSizes
    /// The micro-kernel of multiplies by an unpacked `B` (packed ones bring their own).
    let kernel: MicroKernel
    /// The blocking table of multiplies by an unpacked `B`.
    let blocking: GEMMBlocking
    /// An `MC x KC` block of A, in MR-row panels.
    var packedA = GEMMScratchBuffer()
    /// A `k x NC` block of an unpacked B, in NR-column panels.
    var packedB = GEMMScratchBuffer()
    /// The sums of an `MC x NC` block between depth blocks, tile after tile (only when k > KC).
    var partialSums = GEMMScratchBuffer()
    /// One `MR x NR` edge tile, computed here and copied out.
    var edgeTile = GEMMScratchBuffer()

    public convenience init(cacheSizes: CacheSizes = CacheSizes()) {
        self.init(cacheSizes: cacheSizes, isa: .selected)
    }

    /// A workspace whose unpacked multiplies use the micro-kernel of `isa`.
    convenience init(cacheSizes: CacheSizes, isa: KernelISA) {
        let kernel = MicroKernel(isa: isa)
        self.init(cacheSizes: cacheSizes, kernel: kernel, blocking: GEMMBlocking(cacheSizes: cacheSizes, kernel: kernel))
    }

    /// A workspace with an explicit blocking table (tests and tuning).
    init(cacheSizes: CacheSizes, kernel: MicroKernel, blocking: GEMMBlocking) {
        precondition(blocking.mr == kernel.mr && blocking.nr == kernel.nr)
        self.cacheSizes = cacheSizes
        self.kernel = kernel
        self.blocking = blocking
    }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
        partialSums.deallocate()
        edgeTile.deallocate()
    }
}

/// Single-precision matrix multiply with a fused epilogue.
///
/// Every variant computes, for each output element,
/// `C[i, j] = scale * (sum_p A[i, p] * B[p, j] + bias[j]) + (accumulate ? C[i, j] : 0)`
/// with a reduction order that depends only on the shapes (never on threads), so results are
/// bit-identical for any partitioning of the calls.
///
/// Precisely: the sum is one fused multiply-add chain in increasing `p` starting from 0 (not
/// even the blocking changes it), then `v = sum; v = v + bias[j]` (when there is a bias),
/// `v = v * scale`, `C[i, j] = C[i, j] + v` (when accumulating) or `v`, each step rounded to
/// float. So any split of the rows, or of the columns through `columns`, gives the same bits,
/// and so does every `KernelISA` variant. `C` must not overlap `A`, `B` or `bias`.
///
/// Small products skip the blocked loops for a direct kernel with the same operations
/// (`GEMM+Direct.swift`), chosen from the shapes alone: the bits are the same either way.
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
        precondition(columns.lowerBound >= 0 && columns.upperBound <= b.n)
        if c.rows == 0 || c.cols == 0 { return }
        let operands = GEMMOperands(
            a: a, c: c, bias: bias.map { $0 + columns.lowerBound }, scale: scale, accumulate: accumulate)
        withExtendedLifetime(b) {
            if a.cols <= b.blocking.kc && prefersDirect(m: c.rows, n: c.cols, k: a.cols, bColumnStride: 1) {
                multiplyDirect(operands, packed: b, columns: columns)
            } else {
                loopOverColumnBlocks(operands, packed: b, columns: columns, workspace: workspace)
            }
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
        if c.rows == 0 || c.cols == 0 { return }
        let operands = GEMMOperands(a: a, c: c, bias: bias, scale: scale, accumulate: accumulate)
        if prefersDirect(m: c.rows, n: c.cols, k: a.cols, bColumnStride: b.colStride) {
            multiplyDirect(operands, unpacked: b, isa: workspace.kernel.isa)
        } else {
            loopOverColumnBlocks(operands, unpacked: b, workspace: workspace)
        }
    }
}
