import Foundation
import MultiheadKernels

/// `torch.nn.Linear(in_features, out_features, bias=True)` at inference: `y = x W^T + b`.
///
/// Parameters `weight` `[out, in]` and `bias` `[out]`, initialised as PyTorch does
/// (uniform in `±1/sqrt(in_features)`) from a seeded generator. `W^T` is packed for the GEMM
/// micro-kernel once, on first use after a change. Thread-safe.
public final class Linear: StateDictModule, @unchecked Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let bias: Bool
    public let engine: Engine
    private let lock = NSLock()
    private var weightValues: [Float]
    private var biasValues: [Float]?
    private var packedCache: Packed?

    /// - Throws: `MultiheadError.invalidArgument` for non-positive sizes.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, seed: UInt64 = 0, engine: Engine = .shared) throws {
        guard inFeatures > 0 else { throw MultiheadError.invalidArgument("in_features must be positive, got \(inFeatures)") }
        guard outFeatures > 0 else { throw MultiheadError.invalidArgument("out_features must be positive, got \(outFeatures)") }
        let count = try checkedProduct([inFeatures, outFeatures, 4], "weight")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias
        self.engine = engine
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(inFeatures).squareRoot()
        weightValues = (0..<count / 4).map { _ in rng.nextUniform(bound: bound) }
        biasValues = bias ? (0..<outFeatures).map { _ in rng.nextUniform(bound: bound) } : nil
    }

    public var parameterShapes: [(name: String, shape: [Int])] {
        bias ? [("weight", [outFeatures, inFeatures]), ("bias", [outFeatures])] : [("weight", [outFeatures, inFeatures])]
    }

    public func setParameter(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        let expected = try parameterShape(name)
        try checkParameter(name, expected: expected, shape: shape, count: values.count)
        let copy = Array(values)
        lock.withLock {
            if name == "weight" { weightValues = copy } else { biasValues = copy }
            packedCache = nil
        }
    }

    public func parameter(_ name: String) throws -> Tensor<Float> {
        let shape = try parameterShape(name)
        return lock.withLock { Tensor(uncheckedShape: shape, scalars: name == "weight" ? weightValues : biasValues!) }
    }

    /// `W^T` packed `[in, out]` and the bias: immutable, what a forward call reads.
    final class Packed: @unchecked Sendable {
        let weight: PackedMatrix
        let bias: [Float]?

        init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int, cacheSizes: CacheSizes) {
            self.weight = weight.withUnsafeBufferPointer { buffer in
                // weight is [out, in] row-major; its transpose [in, out] is a column-major view.
                PackedMatrix(MatrixView(base: buffer.baseAddress!, rows: inFeatures, cols: outFeatures,
                                        rowStride: 1, colStride: inFeatures), cacheSizes: cacheSizes)
            }
            self.bias = bias
        }

        /// `c (+)= a W^T + b` for a block of rows: `a` `[m, in]`, `c` `[m, out]`, any strides.
        func apply(_ a: MatrixView, into c: MutableMatrixView, accumulate: Bool = false, workspace: GEMMWorkspace) {
            let columns = 0..<weight.n
            if let bias {
                bias.withUnsafeBufferPointer {
                    GEMM.multiply(a, weight, columns: columns, bias: $0.baseAddress!, accumulate: accumulate, into: c, workspace: workspace)
                }
            } else {
                GEMM.multiply(a, weight, columns: columns, accumulate: accumulate, into: c, workspace: workspace)
            }
        }
    }

    /// The packed parameters, packing them on first use after a change.
    func packed() -> Packed {
        lock.withLock {
            if let packedCache { return packedCache }
            let packed = Packed(weight: weightValues, bias: biasValues, inFeatures: inFeatures, outFeatures: outFeatures,
                                cacheSizes: engine.cacheSizes)
            packedCache = packed
            return packed
        }
    }
}

extension Linear {
    /// Rows per parallel tile of a standalone call.
    static let rowBlock = 64

    /// `y = x W^T + b` on strided views.
    /// - Parameters:
    ///   - input: `[..., in_features]`, float32, rank >= 1, any strides.
    ///   - output: `[..., out_features]`, any strides.
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(input: TensorView, output: MutableTensorView) throws {
        guard input.element == .float32 else { throw MultiheadError.shape("input must be float32, got \(input.element)") }
        guard input.rank >= 1, input.strides.count == input.rank, input.shape.allSatisfy({ $0 >= 0 }) else {
            throw MultiheadError.shape("input must have rank >= 1, sizes >= 0 and one stride per dimension, got shape \(input.shape) and \(input.strides.count) strides")
        }
        guard input.shape.last == inFeatures else {
            throw MultiheadError.shape("input of shape \(input.shape) must have in_features=\(inFeatures) as its last dimension")
        }
        let expected = Array(input.shape.dropLast()) + [outFeatures]
        guard output.shape == expected, output.strides.count == expected.count else {
            throw MultiheadError.shape("output must have shape \(expected), got \(output.shape) with \(output.strides.count) strides")
        }
        let rows = try checkedProduct(Array(input.shape.dropLast()), "input")
        _ = try checkedProduct([rows, max(inFeatures, outFeatures)], "input")
        // Gather to contiguous [rows, in] and scatter from [rows, out]: views of any rank and strides.
        let x = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * inFeatures, 1))
        let y = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * outFeatures, 1))
        defer { x.deallocate(); y.deallocate() }
        gatherRows(input.floats, shape: input.shape, strides: input.strides, into: x)
        let packed = packed()
        let tiles = (rows + Self.rowBlock - 1) / Self.rowBlock
        engine.withWorkspaces { workspaces in
            let work = rows.multipliedReportingOverflow(by: inFeatures &* outFeatures)
            engine.executor.run(tiles: tiles, parallel: work.overflow || work.partialValue >= 1 << 20) { tile, worker in
                let range = tile * Self.rowBlock ..< min((tile + 1) * Self.rowBlock, rows)
                packed.apply(MatrixView(base: x + range.lowerBound * inFeatures, rows: range.count, cols: inFeatures, rowStride: inFeatures),
                             into: MutableMatrixView(base: y + range.lowerBound * outFeatures, rows: range.count, cols: outFeatures, rowStride: outFeatures),
                             workspace: workspaces[worker].gemm)
            }
        }
        scatterRows(y, shape: expected, strides: output.strides, into: output.base)
    }

    /// `Linear(x)` of a tensor `[..., in_features]`.
    public func callAsFunction(_ x: Tensor<Float>) throws -> Tensor<Float> {
        let shape = Array(x.shape.dropLast()) + [outFeatures]
        var result = [Float](repeating: 0, count: try checkedProduct(shape, "output"))
        try x.withView { view in
            try result.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!
                try forward(input: view, output: MutableTensorView(base: base, shape: shape, strides: Tensor<Float>.contiguousStrides(shape)))
            }
        }
        return Tensor(uncheckedShape: shape, scalars: result)
    }
}

/// Copies a strided view `[..., d]` into contiguous row-major memory.
func gatherRows(_ source: UnsafePointer<Float>, shape: [Int], strides: [Int], into dest: UnsafeMutablePointer<Float>) {
    forEachRow(shape: shape, strides: strides) { row, offset, d, stride in
        let out = dest + row * d
        let from = source + offset
        if stride == 1 {
            out.update(from: from, count: d)
        } else {
            for j in 0..<d { out[j] = from[j * stride] }
        }
    }
}

/// Copies contiguous row-major memory into a strided view `[..., d]`.
func scatterRows(_ source: UnsafePointer<Float>, shape: [Int], strides: [Int], into dest: UnsafeMutablePointer<Float>) {
    forEachRow(shape: shape, strides: strides) { row, offset, d, stride in
        let from = source + row * d
        let out = dest + offset
        if stride == 1 {
            out.update(from: from, count: d)
        } else {
            for j in 0..<d { out[j * stride] = from[j] }
        }
    }
}

/// Calls `body(row, offset, d, lastStride)` for each row (every index but the last) of a view.
func forEachRow(shape: [Int], strides: [Int], _ body: (_ row: Int, _ offset: Int, _ d: Int, _ stride: Int) -> Void) {
    guard let d = shape.last, !shape.contains(0) else { return }
    let outer = Array(shape.dropLast())
    let rows = outer.reduce(1, *)
    var index = [Int](repeating: 0, count: outer.count)
    var offset = 0
    for row in 0..<rows {
        body(row, offset, d, strides[shape.count - 1])
        var axis = outer.count - 1
        while axis >= 0 {
            index[axis] += 1
            offset += strides[axis]
            if index[axis] < outer[axis] { break }
            offset -= strides[axis] * outer[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}
