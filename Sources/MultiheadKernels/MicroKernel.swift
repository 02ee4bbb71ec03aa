import CMultiheadKernels

/// The instruction-set variants of the kernels, chosen at run time (never at compile time: a
/// plain `swift build` must run everywhere).
public enum KernelISA: Int, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    /// The Swift reference kernels: correct everywhere, fast nowhere on x86 without flags.
    case portable = 0
    /// AVX2 + FMA micro-kernels (Haswell, Zen 1 and later).
    case avx2 = 1
    /// AVX-512F + FMA micro-kernels (Skylake-SP, Zen 4 and later).
    case avx512 = 2

    /// The best variant this CPU and OS support.
    public static var best: KernelISA { KernelISA(mh_kernels_best_isa()) }

    /// The variant new workspaces, packed matrices and `VectorMath` use: `best`, lowered by the
    /// environment variable `MULTIHEAD_ISA=portable|avx2|avx512` when it is set (read once).
    public static let selected = KernelISA(mh_kernels_selected_isa())

    /// Whether this variant can run on this machine.
    public var isSupported: Bool { mh_kernels_isa_supported(cValue) != 0 }

    public var description: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    public static func < (lhs: KernelISA, rhs: KernelISA) -> Bool { lhs.rawValue < rhs.rawValue }

    init(_ isa: mh_isa) { self = KernelISA(rawValue: Int(isa.rawValue)) ?? .portable }

    var cValue: mh_isa { mh_isa(rawValue: UInt32(rawValue)) }
}

/// One GEMM micro-kernel variant: `C[MR x NR] (+)= A_panel * B_panel` over `kc`.
///
/// The contract (panel layouts, the one fma chain per element, the epilogue) is written next to
/// the C kernels in `CMultiheadKernels.h`; `MicroKernel.reference` is the same contract in
/// portable Swift, used when no C variant runs and as the test oracle.
struct MicroKernel: @unchecked Sendable {
    /// The register tile of the portable kernel (any shape works; this one matches the
    /// 16-column panels of the C variants).
    static let portableShape = (mr: 4, nr: 16)

    let isa: KernelISA
    let mr: Int
    let nr: Int
    /// `nil` for the Swift reference.
    let function: mh_f32_microkernel_fn?
    /// The packing kernels of this variant (`nil`: the Swift reference).
    let packTransposedFunction: mh_f32_pack_fn?
    let packCopiedFunction: mh_f32_pack_fn?

    /// The micro-kernel of `isa`, or of the best supported variant below it.
    init(isa requested: KernelISA) {
        var isa = Swift.min(requested, KernelISA.best)
        var info = mh_f32_microkernel_for_isa(isa.cValue)
        if info.kernel == nil { isa = .portable }
        if isa == .portable {
            info.mr = Int32(Self.portableShape.mr)
            info.nr = Int32(Self.portableShape.nr)
        }
        self.isa = isa
        self.mr = Int(info.mr)
        self.nr = Int(info.nr)
        self.function = isa == .portable ? nil : info.kernel
        self.packTransposedFunction = isa == .portable ? nil : info.pack_transposed
        self.packCopiedFunction = isa == .portable ? nil : info.pack_copied
    }

    /// The reference kernel with any tile shape: the oracle that every C variant must match
    /// bit for bit with its own `mr x nr`.
    init(referenceWithMR mr: Int, nr: Int) {
        self.isa = .portable
        self.mr = mr
        self.nr = nr
        self.function = nil
        self.packTransposedFunction = nil
        self.packCopiedFunction = nil
    }

    /// Runs the kernel: `c(i, j) = c[i * rowStride + j * colStride]`, see the contract.
    @inline(__always)
    func callAsFunction(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, rowStride: Int, colStride: Int,
        args: inout mh_f32_microkernel_args
    ) {
        if let function {
            function(Int64(kc), a, b, c, Int64(rowStride), Int64(colStride), &args)
        } else {
            MicroKernel.reference(
                mr: mr, nr: nr, kc: kc, a: a, b: b, c: c, rowStride: rowStride, colStride: colStride,
                args: args)
        }
    }

    /// Packs one panel from a source with unit column stride:
    /// `dst[p * width + i] = src[i * ld + p]` for `i < count`, zero up to `width` (contract in
    /// `CMultiheadKernels.h`).
    @inline(__always)
    func packTransposed(
        _ src: UnsafePointer<Float>, ld: Int, count: Int, depth: Int, width: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        if let packTransposedFunction {
            packTransposedFunction(src, Int64(ld), Int64(count), Int64(depth), Int64(width), dst)
        } else {
            MicroKernel.referencePackTransposed(src, ld: ld, count: count, depth: depth, width: width, into: dst)
        }
    }

    /// Packs one panel from a source with unit row stride:
    /// `dst[p * width + i] = src[p * ld + i]` for `i < count`, zero up to `width`.
    @inline(__always)
    func packCopied(
        _ src: UnsafePointer<Float>, ld: Int, count: Int, depth: Int, width: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        if let packCopiedFunction {
            packCopiedFunction(src, Int64(ld), Int64(count), Int64(depth), Int64(width), dst)
        } else {
            MicroKernel.referencePackCopied(src, ld: ld, count: count, depth: depth, width: width, into: dst)
        }
    }
}
