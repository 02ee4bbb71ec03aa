/// A read-only float32 matrix addressed by element strides, so that row-major, column-major,
/// transposed and batch-interleaved layouts are all views of the same memory without copies.
///
/// Element `(i, j)` lives at `base[i * rowStride + j * colStride]`.
public struct MatrixView: @unchecked Sendable {
    public var base: UnsafePointer<Float>
    public var rows: Int
    public var cols: Int
    public var rowStride: Int
    public var colStride: Int

    @inlinable
    public init(base: UnsafePointer<Float>, rows: Int, cols: Int, rowStride: Int, colStride: Int = 1) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.rowStride = rowStride
        self.colStride = colStride
    }

    @inlinable
    public subscript(i: Int, j: Int) -> Float { base[i * rowStride + j * colStride] }

    /// The same memory read as the transpose: `[cols x rows]`.
    @inlinable
    public var transposed: MatrixView {
        MatrixView(base: base, rows: cols, cols: rows, rowStride: colStride, colStride: rowStride)
    }
}

/// A writable float32 matrix addressed by element strides (see `MatrixView`).
public struct MutableMatrixView: @unchecked Sendable {
    public var base: UnsafeMutablePointer<Float>
    public var rows: Int
    public var cols: Int
    public var rowStride: Int
    public var colStride: Int

    @inlinable
    public init(base: UnsafeMutablePointer<Float>, rows: Int, cols: Int, rowStride: Int, colStride: Int = 1) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.rowStride = rowStride
        self.colStride = colStride
    }

    @inlinable
    public subscript(i: Int, j: Int) -> Float {
        get { base[i * rowStride + j * colStride] }
        nonmutating set { base[i * rowStride + j * colStride] = newValue }
    }

    @inlinable
    public var readOnly: MatrixView {
        MatrixView(base: UnsafePointer(base), rows: rows, cols: cols, rowStride: rowStride, colStride: colStride)
    }
}
