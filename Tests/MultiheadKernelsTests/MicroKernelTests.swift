import CMultiheadKernels
@testable import MultiheadKernels
import XCTest

/// Every C micro-kernel against the Swift reference of the same `MR x NR`, bit for bit.
final class MicroKernelTests: XCTestCase {
    func testShapesPerISA() {
        XCTAssertEqual(MicroKernel(isa: .portable).mr, MicroKernel.portableShape.mr)
        for isa in supportedISAs {
            let kernel = MicroKernel(isa: isa)
            XCTAssertEqual(kernel.isa, isa)
            XCTAssertEqual(kernel.function == nil, isa == .portable)
        }
        if KernelISA.avx512.isSupported {
            XCTAssertEqual(MicroKernel(isa: .avx512).mr, 16)
            XCTAssertEqual(MicroKernel(isa: .avx512).nr, 16)
        }
        if KernelISA.avx2.isSupported {
            XCTAssertEqual(MicroKernel(isa: .avx2).mr, 6)
            XCTAssertEqual(MicroKernel(isa: .avx2).nr, 16)
        }
        XCTAssertLessThanOrEqual(KernelISA.selected, KernelISA.best)
    }

    func testEveryVariantMatchesReference() {
        var random = TestRandom(seed: 1)
        for isa in supportedISAs where isa != .portable {
            let kernel = MicroKernel(isa: isa)
            let reference = MicroKernel(referenceWithMR: kernel.mr, nr: kernel.nr)
            for kc in [0, 1, 2, 3, 17, 64, 301] {
                for flags in [0, 1, 3].map(UInt32.init) {
                    for withSums in [false, true] {
                        for withBias in [false, true] {
                            for colStride in [1, 3] {
                                check(kernel, against: reference, kc: kc, flags: flags, withSums: withSums,
                                      withBias: withBias, colStride: colStride, random: &random)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `kernel` and `reference` on the same panels and tile; compares every word of C.
    private func check(
        _ kernel: MicroKernel, against reference: MicroKernel, kc: Int, flags: UInt32, withSums: Bool,
        withBias: Bool, colStride: Int, random: inout TestRandom
    ) {
        let mr = kernel.mr, nr = kernel.nr
        let a = random.floats(mr * kc + 1)
        let b = random.floats(kc * nr + 1)
        let sums = random.floats(mr * nr)
        let bias = random.floats(nr)
        // C with padding between rows and columns: the padding must survive.
        let rowStride = nr * colStride + 7
        let initialC = random.floats(mr * rowStride)
        var c1 = initialC, c2 = initialC
        let scale: Float = 0.37
        sums.withUnsafeBufferPointer { sumsBuffer in
            bias.withUnsafeBufferPointer { biasBuffer in
                var args = mh_f32_microkernel_args(
                    sums_in: withSums ? sumsBuffer.baseAddress : nil, bias: withBias ? biasBuffer.baseAddress : nil,
                    scale: scale, flags: flags)
                c1.withUnsafeMutableBufferPointer { c in
                    kernel(kc: kc, a: a, b: b, c: c.baseAddress!, rowStride: rowStride, colStride: colStride, args: &args)
                }
                c2.withUnsafeMutableBufferPointer { c in
                    reference(kc: kc, a: a, b: b, c: c.baseAddress!, rowStride: rowStride, colStride: colStride, args: &args)
                }
            }
        }
        let context = "\(kernel.isa) kc=\(kc) flags=\(flags) sums=\(withSums) bias=\(withBias) cs=\(colStride)"
        for index in c1.indices where c1[index].bitPattern != c2[index].bitPattern {
            XCTFail("\(context): word \(index) = \(c1[index]), reference \(c2[index])")
            return
        }
        // The reference itself against the written-out contract, on one element.
        var expected: Float = withSums ? sums[0] : 0
        for p in 0..<kc { expected = expected.addingProduct(a[p * mr], b[p * nr]) }
        if flags & 1 != 0 {
            if withBias { expected = expected + bias[0] }
            expected = expected * scale
            if flags & 2 != 0 { expected = initialC[0] + expected }
        }
        XCTAssertEqual(c2[0].bitPattern, expected.bitPattern, context)
    }

    /// The C packers against the Swift ones, for the kernels' widths and others, every edge.
    func testPackersMatchReference() {
        var random = TestRandom(seed: 11)
        let source = random.floats(40 * 41)
        for isa in supportedISAs where isa != .portable {
            let kernel = MicroKernel(isa: isa)
            for width in [kernel.mr, kernel.nr, 6, 16, 5, 8] {
                for count in Set([1, 2, 5, width - 1, width]) where count >= 1 && count <= width {
                    for depth in [0, 1, 7, 8, 15, 16, 17, 33] {
                        let ld = 41
                        var actual = [Float](repeating: .nan, count: depth * width + 3)
                        var expected = actual
                        kernel.packTransposed(source, ld: ld, count: count, depth: depth, width: width, into: &actual)
                        MicroKernel.referencePackTransposed(source, ld: ld, count: count, depth: depth, width: width, into: &expected)
                        XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(isa) transposed w=\(width) n=\(count) kc=\(depth)")
                        kernel.packCopied(source, ld: ld, count: count, depth: depth, width: width, into: &actual)
                        MicroKernel.referencePackCopied(source, ld: ld, count: count, depth: depth, width: width, into: &expected)
                        XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(isa) copied w=\(width) n=\(count) kc=\(depth)")
                    }
                }
            }
        }
        // The reference itself, on one element of each.
        var out = [Float](repeating: .nan, count: 3 * 4)
        MicroKernel.referencePackTransposed(source, ld: 41, count: 3, depth: 3, width: 4, into: &out)
        XCTAssertEqual(out[2 * 4 + 1], source[1 * 41 + 2])
        XCTAssertEqual(out[2 * 4 + 3], 0)
        MicroKernel.referencePackCopied(source, ld: 41, count: 3, depth: 3, width: 4, into: &out)
        XCTAssertEqual(out[2 * 4 + 1], source[2 * 41 + 1])
        XCTAssertEqual(out[1 * 4 + 3], 0)
    }
}
