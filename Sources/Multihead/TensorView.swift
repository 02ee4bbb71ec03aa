/// A non-owning, strided view of tensor memory: how the C and Python layers hand tensors to the
/// engine without copies. Strides are in elements and may be 0 (broadcast) or negative.
public struct TensorView: @unchecked Sendable {
    public enum Element: Sendable, Equatable, CustomStringConvertible {
        case float32
        /// One byte per element, nonzero = true.
        case bool

        public var description: String { self == .float32 ? "float32" : "bool" }
    }

    public var base: UnsafeRawPointer
    public var element: Element
    public var shape: [Int]
    public var strides: [Int]

    public init(base: UnsafeRawPointer, element: Element, shape: [Int], strides: [Int]) {
        self.base = base
        self.element = element
        self.shape = shape
        self.strides = strides
    }

    public var rank: Int { shape.count }

    var floats: UnsafePointer<Float> { base.assumingMemoryBound(to: Float.self) }
}

/// A writable float32 strided view (outputs).
public struct MutableTensorView: @unchecked Sendable {
    public var base: UnsafeMutablePointer<Float>
    public var shape: [Int]
    public var strides: [Int]

    public init(base: UnsafeMutablePointer<Float>, shape: [Int], strides: [Int]) {
        self.base = base
        self.shape = shape
        self.strides = strides
    }
}
