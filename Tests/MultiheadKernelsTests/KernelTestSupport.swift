@testable import MultiheadKernels
import XCTest

/// Deterministic pseudo-random floats with full mantissas, so a changed summation order shows.
struct TestRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Int64(bitPattern: next()) >> 40) / Float(1 << 23) }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in float() } }
}

/// How a test matrix lies in memory.
enum TestLayout: CaseIterable, CustomStringConvertible {
    case rowMajor, paddedRows, columnMajor, strided

    /// `(rowStride, colStride)` for a `rows x cols` matrix.
    func strides(rows: Int, cols: Int) -> (Int, Int) {
        switch self {
        case .rowMajor: return (cols, 1)
        case .paddedRows: return (cols + 5, 1)
        case .columnMajor: return (1, rows)
        case .strided: return (2 * cols + 1, 2)
        }
    }

    var description: String {
        switch self {
        case .rowMajor: return "row-major"
        case .paddedRows: return "padded rows"
        case .columnMajor: return "column-major"
        case .strided: return "strided"
        }
    }
}

/// A matrix owning its storage, with any layout; element `(i, j)` is `storage[i * rowStride + j * colStride]`.
struct TestMatrix {
    let rows: Int
    let cols: Int
    let rowStride: Int
    let colStride: Int
    var storage: [Float]

    /// Random elements; storage between elements holds NaN, so a stray read or write shows.
    init(rows: Int, cols: Int, layout: TestLayout, random: inout TestRandom) {
        self.rows = rows
        self.cols = cols
        (rowStride, colStride) = layout.strides(rows: rows, cols: cols)
        let count = rows == 0 || cols == 0 ? 1 : (rows - 1) * rowStride + (cols - 1) * colStride + 1
        storage = [Float](repeating: .nan, count: count)
        for i in 0..<rows { for j in 0..<cols { storage[i * rowStride + j * colStride] = random.float() } }
    }

    subscript(i: Int, j: Int) -> Float {
        get { storage[i * rowStride + j * colStride] }
        set { storage[i * rowStride + j * colStride] = newValue }
    }

    func withView<R>(_ body: (MatrixView) -> R) -> R {
        storage.withUnsafeBufferPointer {
            body(MatrixView(base: $0.baseAddress!, rows: rows, cols: cols, rowStride: rowStride, colStride: colStride))
        }
    }

    mutating func withMutableView<R>(_ body: (MutableMatrixView) -> R) -> R {
        let (rows, cols, rowStride, colStride) = (self.rows, self.cols, self.rowStride, self.colStride)
        return storage.withUnsafeMutableBufferPointer {
            body(MutableMatrixView(base: $0.baseAddress!, rows: rows, cols: cols, rowStride: rowStride, colStride: colStride))
        }
    }
}

/// The GEMM contract, element by element: one fma chain in increasing p, then the epilogue.
func oracleMultiply(
    _ a: TestMatrix, _ b: TestMatrix, columns: Range<Int>? = nil, bias: [Float]?, scale: Float,
    accumulate: Bool, into c: inout TestMatrix
) {
    let columns = columns ?? 0..<b.cols
    for i in 0..<a.rows {
        for (jc, j) in columns.enumerated() {
            var sum: Float = 0
            for p in 0..<a.cols { sum = sum.addingProduct(a[i, p], b[p, j]) }
            var v = sum
            if let bias { v = v + bias[j] }
            v = v * scale
            if accumulate { v = c[i, jc] + v }
            c[i, jc] = v
        }
    }
}

/// Bit equality of every element (NaN compares by bits too), with the first difference named.
func assertSameBits(
    _ actual: TestMatrix, _ expected: TestMatrix, _ message: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.rows, expected.rows, file: file, line: line)
    XCTAssertEqual(actual.cols, expected.cols, file: file, line: line)
    for i in 0..<actual.rows {
        for j in 0..<actual.cols where actual[i, j].bitPattern != expected[i, j].bitPattern {
            XCTFail("\(message()): C[\(i), \(j)] = \(actual[i, j]), expected \(expected[i, j])", file: file, line: line)
            return
        }
    }
}

/// The variants this machine can run (portable always).
var supportedISAs: [KernelISA] { KernelISA.allCases.filter(\.isSupported) }
