import Foundation
import MultiheadKernels

extension MultiheadAttention {
    /// Runs attention on strided views, writing into caller-owned memory (the C and Python path).
    ///
    /// - Parameters:
    ///   - query: `[L, N, qdim]` (`[N, L, qdim]` with batchFirst), or unbatched `[L, qdim]`.
    ///   - key: `[S, N, kdim]` / `[N, S, kdim]` / `[S, kdim]`.
    ///   - value: `[S, N, vdim]` / `[N, S, vdim]` / `[S, vdim]`.
    ///   - keyPaddingMask: `[N, S]` (unbatched `[S]`), bool or float32, or nil.
    ///   - attnMask: `[L, S]` or `[N*H, L, S]` (unbatched `[H, L, S]`), bool or float32, or nil.
    ///   - output: shaped as `outputShapes(...).output`, any strides.
    ///   - weights: shaped as `outputShapes(...).weights` when `needWeights`, else ignored.
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(query: TensorView, key: TensorView, value: TensorView, keyPaddingMask: TensorView? = nil,
                        attnMask: TensorView? = nil, options: ForwardOptions = ForwardOptions(),
                        output: MutableTensorView, weights: MutableTensorView?) throws {
        let plan = try makePlan(query: query, key: key, value: value, keyPaddingMask: keyPaddingMask,
                                attnMask: attnMask, options: options)
        guard output.shape == plan.outputShape, output.strides.count == output.shape.count else {
            throw MultiheadError.shape("output must have shape \(plan.outputShape), got \(output.shape) with \(output.strides.count) strides")
        }
        var weightsView: MutableTensorView? = nil
        if let expected = plan.weightsShape {
            guard let weights else { throw MultiheadError.invalidArgument("need_weights is true but no weights buffer was given") }
            guard weights.shape == expected, weights.strides.count == expected.count else {
                throw MultiheadError.shape("weights must have shape \(expected), got \(weights.shape) with \(weights.strides.count) strides")
            }
            weightsView = weights
        }
        try Self.checkOutputLayout(output, "output")
        if let weightsView {
            try Self.checkOutputLayout(weightsView, "weights")
            if Self.byteRange(output).overlaps(Self.byteRange(weightsView)) {
                throw MultiheadError.shape("output and weights overlap in memory; outputs must not overlap each other")
            }
        }
        // No query rows (or no batches): nothing to write. Returning here also keeps a huge N or S
        // that multiplies an empty dimension from costing time or scratch.
        if plan.N == 0 || plan.L == 0 { return }
        run(plan, output: output, weights: weightsView)
    }

    /// Throws when two elements of an output share memory (a zero stride on a dimension of size
    /// > 1, or strides that interleave), as PyTorch refuses to write such tensors: tiles would race.
    /// Sorted by stride magnitude, each dimension must step past all the smaller ones span.
    static func checkOutputLayout(_ view: MutableTensorView, _ name: String) throws {
        if view.shape.contains(0) { return }
        // Dimensions of size > 1 by increasing stride magnitude: an insertion sort of a few
        // entries on the stack (this runs on every call).
        let rank = view.shape.count
        try withUnsafeTemporaryAllocation(of: (size: Int, stride: UInt).self, capacity: max(rank, 1)) { dims in
            var count = 0
            for i in 0..<rank where view.shape[i] > 1 {
                let entry = (size: view.shape[i], stride: view.strides[i].magnitude)
                var j = count
                while j > 0 && dims[j - 1].stride > entry.stride { dims[j] = dims[j - 1]; j -= 1 }
                dims[j] = entry
                count += 1
            }
            try checkSortedDimensions(dims.prefix(count), view, name)
        }
    }

    private static func checkSortedDimensions(_ dims: Slice<UnsafeMutableBufferPointer<(size: Int, stride: UInt)>>,
                                              _ view: MutableTensorView, _ name: String) throws {
        var span: UInt = 0
        for (size, stride) in dims {
            guard stride > span else {
                throw MultiheadError.shape("\(name) of shape \(view.shape) has strides \(view.strides) under which elements share memory; outputs must not overlap themselves")
            }
            let (extent, overflowM) = stride.multipliedReportingOverflow(by: UInt(size - 1))
            let (next, overflowA) = span.addingReportingOverflow(extent)
            guard !overflowM, !overflowA else {
                throw MultiheadError.outOfMemory("\(name) of shape \(view.shape) and strides \(view.strides) overflows the address space")
            }
            span = next
        }
    }

    /// The bytes an output's elements occupy, first to last (empty for no elements).
    static func byteRange(_ view: MutableTensorView) -> Range<UInt> {
        if view.shape.contains(0) { return 0..<0 }
        var low = 0, high = 0
        for (size, stride) in zip(view.shape, view.strides) {
            let reach = stride &* (size - 1)
            if reach < 0 { low &+= reach } else { high &+= reach }
        }
        let base = Int(bitPattern: view.base)
        let size = MemoryLayout<Float>.size
        let (lower, upper) = (UInt(bitPattern: base &+ low &* size), UInt(bitPattern: base &+ high &* size &+ size))
        return lower <= upper ? lower..<upper : 0..<0
    }

    /// Runs attention on Swift tensors.
    ///
    /// - Returns: the output (`[L, N, E]`, `[N, L, E]` or `[L, E]`) and, when `needWeights`, the
    ///   weights (`[N, L, S]` averaged, `[N, H, L, S]` per head; unbatched without `N`), where `S`
    ///   counts the keys appended by `addBiasKV` and `addZeroAttn`.
    /// - Throws: `MultiheadError.shape` naming the argument and shapes that do not fit.
    public func forward(query: Tensor<Float>, key: Tensor<Float>, value: Tensor<Float>, keyPaddingMask: Mask? = nil,
                        needWeights: Bool = true, attnMask: Mask? = nil, averageAttnWeights: Bool = true,
                        isCausal: Bool = false) throws -> (output: Tensor<Float>, weights: Tensor<Float>?) {
        let options = ForwardOptions(needWeights: needWeights, averageAttnWeights: averageAttnWeights, isCausal: isCausal)
        let shapes = try outputShapes(query: query.shape, key: key.shape, value: value.shape, options: options)
        // The results are allocated here: refuse what cannot fit rather than trap in the allocator.
        try checkMemory(floats: shapes.output.reduce(1, *), "an output of shape \(shapes.output)")
        if let weightsShape = shapes.weights {
            try checkMemory(floats: weightsShape.reduce(1, *), "attention weights of shape \(weightsShape) (need_weights)")
        }
        var output = [Float](repeating: 0, count: shapes.output.reduce(1, *))
        var weights = [Float](repeating: 0, count: shapes.weights?.reduce(1, *) ?? 0)
        try query.withView { q in
            try key.withView { k in
                try value.withView { v in
                    try keyPaddingMask.withView { kpm in
                        try attnMask.withView { am in
                            try output.withUnsafeMutableBufferPointer { o in
                                try weights.withUnsafeMutableBufferPointer { w in
                                    let outView = MutableTensorView(base: o.baseAddress!, shape: shapes.output,
                                                                    strides: Tensor<Float>.contiguousStrides(shapes.output))
                                    let weightsView = shapes.weights.map {
                                        MutableTensorView(base: w.baseAddress!, shape: $0, strides: Tensor<Float>.contiguousStrides($0))
                                    }
                                    try forward(query: q, key: k, value: v, keyPaddingMask: kpm, attnMask: am,
                                                options: options, output: outView, weights: weightsView)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(uncheckedShape: shapes.output, scalars: output),
                shapes.weights.map { Tensor(uncheckedShape: $0, scalars: weights) })
    }

    /// Callable like the PyTorch module: `try mha(x, x, x)`.
    public func callAsFunction(_ query: Tensor<Float>, _ key: Tensor<Float>, _ value: Tensor<Float>,
                               keyPaddingMask: Mask? = nil, needWeights: Bool = true, attnMask: Mask? = nil,
                               averageAttnWeights: Bool = true, isCausal: Bool = false) throws
        -> (output: Tensor<Float>, weights: Tensor<Float>?) {
        try forward(query: query, key: key, value: value, keyPaddingMask: keyPaddingMask, needWeights: needWeights,
                    attnMask: attnMask, averageAttnWeights: averageAttnWeights, isCausal: isCausal)
    }
}

extension Tensor where Scalar == Float {
    func withView<R>(_ body: (TensorView) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer { buffer in
            // An empty array may have no storage: any aligned address serves, nothing is read.
            let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 64)!
            return try body(TensorView(base: base, element: .float32, shape: shape, strides: strides))
        }
    }
}

extension Optional where Wrapped == Mask {
    func withView<R>(_ body: (TensorView?) throws -> R) rethrows -> R {
        switch self {
        case .none: return try body(nil)
        case .float(let t): return try t.withView(body)
        case .bool(let t):
            return try t.scalars.withUnsafeBufferPointer { buffer in
                let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 64)!
                return try body(TensorView(base: base, element: .bool, shape: t.shape, strides: t.strides))
            }
        }
    }
}
