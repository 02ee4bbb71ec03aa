import CMultiheadABI
import Multihead

/// Checks an `mh_tensor` descriptor and turns it into the API's views. Everything that could
/// make later code trap (rank, sizes, overflowing products and extents, NULL data) is checked here.
enum TensorDescriptor {
    /// The shape of a descriptor, its rank and sizes checked (strides and data not read).
    static func shape(_ t: mh_tensor, _ name: String) throws -> [Int] {
        guard t.rank >= 0, t.rank <= MH_MAX_RANK else {
            throw ABIError.shape("\(name).rank is \(t.rank), must be 0...\(MH_MAX_RANK)")
        }
        let shape = withUnsafeBytes(of: t.shape) { raw in (0..<Int(t.rank)).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ABIError.shape("\(name) has a negative size in shape \(shape)") }
        return shape
    }

    static func shapeAndStrides(_ t: mh_tensor, _ name: String) throws -> (shape: [Int], strides: [Int]) {
        let shape = try shape(t, name)
        let rank = shape.count
        let strides = withUnsafeBytes(of: t.strides) { raw in (0..<rank).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
        var elements = 1
        var extent = 0
        for i in 0..<rank {
            let size = shape[i], stride = strides[i]
            let (e, overflowE) = elements.multipliedReportingOverflow(by: size)
            let (span, overflowS) = stride.magnitude.multipliedReportingOverflow(by: UInt(max(size - 1, 0)))
            let (x, overflowX) = UInt(extent).addingReportingOverflow(span)
            guard !overflowE, !overflowS, !overflowX, x < UInt(Int64.max / 8) else {
                throw ABIError(status: MH_ERR_OUT_OF_MEMORY, message: "\(name) of shape \(shape) and strides \(strides) overflows the address space")
            }
            elements = e
            extent = Int(x)
        }
        if elements > 0 && t.data == nil { throw ABIError.invalid("\(name).data is NULL for a tensor of shape \(shape)") }
        return (shape, strides)
    }

    static func element(_ t: mh_tensor, _ name: String, allowBool: Bool) throws -> TensorView.Element {
        switch t.dtype {
        case Int32(MH_DTYPE_F32.rawValue): return .float32
        case Int32(MH_DTYPE_BOOL.rawValue) where allowBool: return .bool
        case Int32(MH_DTYPE_BOOL.rawValue): throw ABIError.shape("\(name) must be float32 (MH_DTYPE_F32), got bool")
        default:
            throw ABIError.shape("\(name).dtype \(t.dtype) is not a valid mh_dtype"
                                 + (allowBool ? " (masks must be MH_DTYPE_BOOL or MH_DTYPE_F32)" : " (expected MH_DTYPE_F32)"))
        }
    }

    /// An input view; masks may be bool.
    static func input(_ pointer: UnsafePointer<mh_tensor>?, _ name: String, allowBool: Bool = false) throws -> TensorView {
        let t = try required(pointer, name).pointee
        let element = try element(t, name, allowBool: allowBool)
        let (shape, strides) = try shapeAndStrides(t, name)
        let base = t.data.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 64)!
        return TensorView(base: base, element: element, shape: shape, strides: strides)
    }

    static func optionalInput(_ pointer: UnsafePointer<mh_tensor>?, _ name: String) throws -> TensorView? {
        guard pointer != nil else { return nil }
        return try input(pointer, name, allowBool: true)
    }

    /// A float32 output view.
    static func output(_ pointer: UnsafeMutablePointer<mh_tensor>?, _ name: String) throws -> MutableTensorView {
        let t = try required(pointer, name).pointee
        _ = try element(t, name, allowBool: false)
        let (shape, strides) = try shapeAndStrides(t, name)
        let base = t.data.map { $0.assumingMemoryBound(to: Float.self) } ?? UnsafeMutablePointer(bitPattern: 64)!
        return MutableTensorView(base: base, shape: shape, strides: strides)
    }

    /// Writes `shape` into a caller's `int64_t[MH_MAX_RANK]`.
    static func write(_ shape: [Int], rank: UnsafeMutablePointer<Int32>, into out: UnsafeMutablePointer<Int64>) {
        rank.pointee = Int32(shape.count)
        for (i, d) in shape.enumerated() { out[i] = Int64(d) }
    }

    /// Visits every element of a strided view in row-major order: `linear` is its index in a
    /// row-major array of `shape`, `offset` its element offset through `strides`.
    static func forEachIndex(_ shape: [Int], _ strides: [Int], _ body: (_ linear: Int, _ offset: Int) -> Void) {
        let count = shape.reduce(1, *)
        var index = [Int](repeating: 0, count: shape.count)
        for linear in 0..<count {
            var offset = 0
            for (i, s) in zip(index, strides) { offset += i * s }
            body(linear, offset)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
