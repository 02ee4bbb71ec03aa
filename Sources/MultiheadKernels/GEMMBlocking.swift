/// The BLIS blocking parameters of one micro-kernel on one cache hierarchy: THE table.
///
/// | parameter | rule (4-byte floats)                                      | Zen 4 (32K L1d, 1M L2, 32M L3) |
/// |-----------|-----------------------------------------------------------|--------------------------------|
/// | MR x NR   | the micro-kernel's register tile (`MicroKernel`)          | 16 x 16 avx512, 6 x 16 avx2    |
/// | KC        | A micro-panel MR x KC + B micro-panel KC x NR fill L1d    | 256 avx512, 368 avx2           |
/// | MC        | the packed A block MC x KC fills a quarter of L2          | 256 avx512, 174 avx2           |
/// | NC        | the B block KC x NC fills half of L3, at most 2048        | 2048                           |
///
/// KC is a multiple of 8 in [16, 1024]; MC a multiple of MR, NC of NR, each at least one tile.
/// MC takes a quarter of L2, not BLIS's half, because L2 also carries what streams past the
/// A block: the B micro-panels (from L3) and, when k > KC, the partial sums of the MC x NC
/// block (`GEMM+Loops.swift`). Measured on Zen 4 at 1024^3 (GFLOP/s, medians of noisy runs):
/// MC 96..256 gives 107..109, MC 512 gives 105..107; KC 128..512 all lie within 2 of each
/// other. NC is capped because the partial sums of an MC x NC block are per-thread scratch
/// (2 MB at 256 x 2048); 1024..4096 measured the same. `CacheSizes` are per core (the runtime
/// passes the L3 share of the cores using it).
struct GEMMBlocking: Equatable, Sendable {
    let mr: Int
    let nr: Int
    let kc: Int
    let mc: Int
    let nc: Int

    /// Most columns per NC block: bounds the `MC x NC` partial-sum scratch of a workspace.
    static let maximumNC = 2048

    init(cacheSizes: CacheSizes, kernel: MicroKernel) {
        let float = MemoryLayout<Float>.size
        let mr = kernel.mr, nr = kernel.nr
        let kc = Swift.min(1024, Swift.max(16, cacheSizes.l1d / ((mr + nr) * float) / 8 * 8))
        let mc = Swift.max(mr, cacheSizes.l2 / 4 / (kc * float) / mr * mr)
        let nc = Swift.max(nr, Swift.min(Self.maximumNC, cacheSizes.l3 / 2 / (kc * float)) / nr * nr)
        self.init(mr: mr, nr: nr, kc: kc, mc: mc, nc: nc)
    }

    /// An explicit table (tests and tuning).
    init(mr: Int, nr: Int, kc: Int, mc: Int, nc: Int) {
        precondition(mr > 0 && nr > 0 && kc > 0 && mc % mr == 0 && mc > 0 && nc % nr == 0 && nc > 0)
        self.mr = mr
        self.nr = nr
        self.kc = kc
        self.mc = mc
        self.nc = nc
    }
}
