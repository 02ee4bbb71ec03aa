import CMultiheadHeader
import Foundation

// libFuzzer target: the C ABI of libmultihead, end to end. From the input it decodes a module
// configuration (sometimes an invalid one), random parameters set through strided descriptors,
// query/key/value/mask/output/weights descriptors with random layouts (permuted axes, gaps,
// negative and zero strides, sizes up to Int64.max on broadcast axes), options, and sometimes one
// corrupted descriptor field. Then it checks:
// - mh_mha_create, mh_mha_output_shapes and mh_mha_forward reject exactly what the header says
//   they must (Oracle.swift), with a message, and accept the rest;
// - after an error the module still works;
// - a successful forward writes every output element, nothing outside the views, the same bits
//   when repeated, and (inputs finite) matches a float64 reference computed here.

private func fail(_ message: String) -> Never {
    fputs("fuzz-forward: \(message)\n", stderr)
    abort()
}

private let engine: OpaquePointer = {
    var options = mh_engine_options()
    mh_engine_options_init_sized(&options, MemoryLayout<mh_engine_options>.size)
    options.num_threads = 2
    var engine: OpaquePointer?
    guard mh_engine_create(&options, &engine) == MH_OK, let engine else { fail("mh_engine_create failed") }
    return engine
}()

private func message() -> String { String(cString: mh_last_error_message()) }

private func expectError(_ status: mh_status, _ what: String) {
    if status == MH_OK { fail("\(what): accepted, but the contract says it must be rejected") }
    if message().isEmpty { fail("\(what): status \(status.rawValue) with an empty error message") }
    if status != MH_ERR_INVALID_ARGUMENT && status != MH_ERR_SHAPE && status != MH_ERR_OUT_OF_MEMORY {
        fail("\(what): unexpected status \(status.rawValue): \(message())")
    }
}

/// Outcomes so far, printed at exit when MH_FUZZ_STATS is set: how much of the input space the
/// oracle really checks.
private var outcomes: [String: Int] = [:]
private func tally(_ outcome: String) {
    if outcomes.isEmpty && getenv("MH_FUZZ_STATS") != nil {
        atexit { for (k, v) in outcomes.sorted(by: { $0.key < $1.key }) { fputs("fuzz-forward: \(k): \(v)\n", stderr) } }
    }
    outcomes[outcome, default: 0] += 1
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzForward(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var choices = Choices(bytes: UnsafeBufferPointer(start: data, count: size))
    runCase(&choices)
    return 0
}

private func runCase(_ c: inout Choices) {
    // 1. The module.
    let H = 1 + c.below(3), E = H * (1 + c.below(4))
    var config = mh_mha_config()
    mh_mha_config_init(&config)
    config.embed_dim = Int64(E)
    config.num_heads = Int64(H)
    config.kdim = c.oneIn(2) ? 0 : Int64(1 + c.below(6))
    config.vdim = c.oneIn(2) ? 0 : Int64(1 + c.below(6))
    config.qdim = c.oneIn(2) ? 0 : Int64(1 + c.below(6))
    config.bias = c.oneIn(4) ? 0 : 1
    config.add_bias_kv = c.oneIn(3) ? 1 : 0
    config.add_zero_attn = c.oneIn(3) ? 1 : 0
    config.batch_first = c.oneIn(2) ? 1 : 0
    config.seed = UInt64(c.byte())
    var mustFail = false
    if c.oneIn(16) {
        mustFail = true
        switch c.below(5) {
        case 0: config.embed_dim = c.pick([0, -4, Int64.min, 1 << 40, Int64.max / 2, Int64.max])
        case 1: config.num_heads = c.pick([0, -1, Int64(E + 1), Int64.min, Int64.max])
        case 2: config.kdim = c.pick([-1, Int64.min])
        case 3: config.struct_size = c.pick([0, 4, UInt32(MemoryLayout<mh_mha_config>.size + 8)])
        default: config.dropout = c.pick([-0.5, 1.5, .nan, .infinity])
        }
    }
    var created: OpaquePointer?
    let status = mh_mha_create(engine, &config, &created)
    if mustFail {
        expectError(status, "mh_mha_create(embed_dim \(config.embed_dim), num_heads \(config.num_heads), kdim \(config.kdim), struct_size \(config.struct_size), dropout \(config.dropout))")
        mh_mha_destroy(created)
        tally("create rejected")
        return
    }
    guard status == MH_OK, let module = created else { fail("mh_mha_create rejected a valid config: \(message())") }
    defer { mh_mha_destroy(module) }
    let cfg = Config(E: E, H: H, kdim: config.kdim == 0 ? E : Int(config.kdim), vdim: config.vdim == 0 ? E : Int(config.vdim),
                     qdim: config.qdim == 0 ? E : Int(config.qdim), bias: config.bias != 0, addBiasKV: config.add_bias_kv != 0,
                     addZeroAttn: config.add_zero_attn != 0, batchFirst: config.batch_first != 0)

    // 2. Parameters, set through random layouts and read back.
    var values = Values(state: c.seed())
    let specials = c.oneIn(8)
    func draw(_ scale: Float) -> Float {
        if specials && values.next() % 16 == 0 {
            return [Float.nan, .infinity, -.infinity, 1e30, -1e30, .leastNonzeroMagnitude, Float(bitPattern: 0x0001_0000), -0.0][Int(values.next() % 8)]
        }
        return values.uniform() * scale
    }
    var parameters: [String: [Float]] = [:]
    var count: Int32 = 0
    guard mh_mha_parameter_count(module, &count) == MH_OK else { fail("parameter_count: \(message())") }
    for i in 0..<count {
        var name: UnsafePointer<CChar>?
        var rank: Int32 = 0
        var shape = [Int64](repeating: 0, count: 8)
        guard mh_mha_parameter_info(module, i, &name, &rank, &shape) == MH_OK, let name else { fail("parameter_info: \(message())") }
        let buffer = Buffer(shape: Array(shape.prefix(Int(rank))), dtype: F32, choices: &c, broadcast: false)
        var logical: [Float] = []
        buffer.fillFloats { let x = draw(1); logical.append(x); return x }
        guard mh_mha_set_parameter(module, name, buffer.pointer) == MH_OK else { fail("set_parameter(\(String(cString: name))): \(message())") }
        var back = [Float](repeating: 0, count: logical.count)
        var descriptor = mh_tensor()
        back.withUnsafeMutableBytes { raw in
            guard mh_tensor_init_contiguous(&descriptor, raw.baseAddress, F32, rank, shape) == MH_OK,
                  mh_mha_get_parameter(module, name, &descriptor) == MH_OK else { fail("get_parameter: \(message())") }
        }
        if back.map(\.bitPattern) != logical.map(\.bitPattern) { fail("parameter \(String(cString: name)) did not round-trip") }
        parameters[String(cString: name)] = logical
    }

    // 3. Inputs, masks, outputs.
    let batched = !c.oneIn(4)
    // N, L, S: mostly non-empty, sometimes 0.
    var sizes = [Int64(c.oneIn(8) ? 0 : 1 + c.below(3)), Int64(c.oneIn(8) ? 0 : 1 + c.below(5)), Int64(c.oneIn(8) ? 0 : 1 + c.below(5))]
    var hugeDim = -1
    if c.oneIn(12) {
        hugeDim = c.below(batched ? 3 : 2) + (batched ? 0 : 1)
        sizes[hugeDim] = c.pick([1 << 40, 1 << 62, Int64.max])
    }
    let (N, L, S) = (sizes[0], sizes[1], sizes[2])
    /// (shape, axis of the huge size or nil) of a sequence tensor.
    func sequence(_ length: Int, _ features: Int) -> ([Int64], Set<Int>) {
        let lengthSize = sizes[length]
        let hugeAxes: (batch: Int, seq: Int) = !batched ? (-1, 0) : (cfg.batchFirst ? (0, 1) : (1, 0))
        var huge: Set<Int> = []
        if hugeDim == 0 && batched { huge.insert(hugeAxes.batch) }
        if hugeDim == length { huge.insert(hugeAxes.seq) }
        let shape = !batched ? [lengthSize, Int64(features)]
            : (cfg.batchFirst ? [N, lengthSize, Int64(features)] : [lengthSize, N, Int64(features)])
        return (shape, huge)
    }
    func input(_ length: Int, _ features: Int) -> Buffer {
        let (shape, huge) = sequence(length, features)
        let b = Buffer(shape: shape, dtype: F32, choices: &c, broadcast: true, huge: huge)
        b.fillFloats { draw(2) }
        return b
    }
    let q = input(1, cfg.qdim)
    let selfAttention = cfg.kdim == cfg.qdim && cfg.vdim == cfg.qdim && S == L && c.oneIn(3)
    let k = selfAttention ? q : input(2, cfg.kdim)
    let v = selfAttention ? q : (cfg.vdim == cfg.kdim && c.oneIn(3) ? k : input(2, cfg.vdim))

    var kpm: Buffer? = nil
    switch c.below(3) {
    case 1, 2:
        let isBool = c.oneIn(2)
        let huge: Set<Int> = batched ? Set([hugeDim == 0 ? 0 : -1, hugeDim == 2 ? 1 : -1]) : (hugeDim == 2 ? [0] : [])
        let b = Buffer(shape: batched ? [N, S] : [S], dtype: isBool ? BOOL : F32, choices: &c, broadcast: true, huge: huge)
        if isBool { b.fillBytes { values.next() % 4 == 0 ? 1 : 0 } } else { b.fillFloats { values.next() % 4 == 0 ? -.infinity : draw(3) } }
        kpm = b
    default: break
    }
    var am: Buffer? = nil
    let amKind = c.below(5)
    if amKind > 0 {
        let isBool = amKind % 2 == 1
        let threeD = amKind > 2 && hugeDim != 0
        let heads = batched ? N &* Int64(cfg.H) : Int64(cfg.H)
        var huge: Set<Int> = []
        if hugeDim == 1 { huge.insert(threeD ? 1 : 0) }
        if hugeDim == 2 { huge.insert(threeD ? 2 : 1) }
        let b = Buffer(shape: threeD ? [heads, L, S] : [L, S], dtype: isBool ? BOOL : F32, choices: &c, broadcast: true, huge: huge)
        if isBool { b.fillBytes { values.next() % 4 == 0 ? 1 : 0 } } else { b.fillFloats { values.next() % 4 == 0 ? -.infinity : draw(3) } }
        am = b
    }
    var options = mh_forward_options()
    mh_forward_options_init(&options)
    options.need_weights = c.oneIn(3) ? 0 : 1
    options.average_attn_weights = c.oneIn(2) ? 1 : 0
    options.is_causal = c.oneIn(4) ? 1 : 0
    let badOptions = c.oneIn(32)
    if badOptions { options.struct_size = c.pick([0, 4, UInt32(MemoryLayout<mh_forward_options>.size + 4)]) }

    guard let planned = expectedShapes(cfg, q: q.shape, k: k.shape, v: v.shape, needWeights: options.need_weights != 0,
                                       average: options.average_attn_weights != 0).expected else { fail("generated invalid shapes") }
    func outputBuffer(_ shape: [Int64], nAxis: Int?, lAxis: Int?, sAxis: Int?) -> Buffer {
        var huge: Set<Int> = []
        if hugeDim == 0, let nAxis { huge.insert(nAxis) }
        if hugeDim == 1, let lAxis { huge.insert(lAxis) }
        if hugeDim == 2, let sAxis { huge.insert(sAxis) }
        let b = Buffer(shape: shape, dtype: F32, choices: &c, broadcast: c.oneIn(16), huge: huge)
        b.fillSentinel()
        return b
    }
    let out = outputBuffer(planned.output, nAxis: batched ? (cfg.batchFirst ? 0 : 1) : nil,
                           lAxis: batched && !cfg.batchFirst ? 0 : (batched ? 1 : 0), sAxis: nil)
    let weightsShape = planned.weights ?? (batched ? [N, L, S &+ Int64(cfg.appended)] : [L, S &+ Int64(cfg.appended)])
    let r = weightsShape.count
    let weights = outputBuffer(weightsShape, nAxis: batched ? 0 : nil, lAxis: r - 2, sAxis: r - 1)
    let passWeights = options.need_weights != 0 || c.oneIn(2)

    // 4. Sometimes one corrupted field.
    var tensors: [(String, Buffer, Bool)] = [("query", q, false), ("key", k, false), ("value", v, false), ("output", out, false)]
    if let kpm { tensors.append(("key_padding_mask", kpm, true)) }
    if let am { tensors.append(("attn_mask", am, true)) }
    if passWeights { tensors.append(("weights", weights, false)) }
    var corrupted = ""
    if c.oneIn(5) {
        let (name, b, isMask) = tensors[c.below(tensors.count)]
        let axis = c.below(max(b.rank, 1))
        switch c.below(5) {
        case 0:
            b.descriptor.dtype = isMask ? c.pick([0, 3, 4, 99, -1]) : c.pick([0, BOOL, 3, 4, 99, -1])
        case 1:
            b.descriptor.rank = c.pick([-1, 9, 100, Int32.min, Int32.max, b.descriptor.rank - 1, b.descriptor.rank + 1])
        case 2:
            withUnsafeMutableBytes(of: &b.descriptor.shape) { raw in
                let old = raw.load(fromByteOffset: 8 * axis, as: Int64.self)
                raw.storeBytes(of: c.pick([-1, Int64.min, 1 << 62, Int64.max, 0, old &+ 1, old &- 1]), toByteOffset: 8 * axis, as: Int64.self)
            }
        case 3:
            withUnsafeMutableBytes(of: &b.descriptor.strides) { raw in
                let old = raw.load(fromByteOffset: 8 * axis, as: Int64.self)
                raw.storeBytes(of: c.pick([Int64.max, Int64.min, 1 << 61, -(1 << 61), 0, old &* 2, 0 &- old]), toByteOffset: 8 * axis, as: Int64.self)
            }
        default:
            b.descriptor.data = nil
        }
        corrupted = "\(name) corrupted: dtype \(b.descriptor.dtype) rank \(b.descriptor.rank) shape \(b.shape) strides \(b.strides) data \(String(describing: b.descriptor.data))"
    }

    // 5. What the contract says.
    var problem: String? = badOptions ? "options->struct_size" : nil
    var shapesProblem: String? = problem
    // The weights descriptor is read only when need_weights is set.
    let checked = tensors.filter { $0.0 != "weights" || options.need_weights != 0 }
    for (name, b, isMask) in checked {
        if let p = descriptorProblem(b.descriptor, allowBool: isMask, memory: true) { problem = problem ?? "\(name): \(p)" }
    }
    for (name, b) in [("query", q), ("key", k), ("value", v)] {
        if let p = descriptorProblem(b.descriptor, allowBool: false, memory: false) { shapesProblem = shapesProblem ?? "\(name): \(p)" }
    }
    // Memory the library would read or write that the buffers lack: the call is the caller's fault.
    if problem == nil && checked.contains(where: { !insideBuffer($0.1) }) { tally("skipped: outside the buffers"); return }
    let shapes = expectedShapes(cfg, q: q.shape, k: k.shape, v: v.shape, needWeights: options.need_weights != 0,
                                average: options.average_attn_weights != 0)
    shapesProblem = shapesProblem ?? shapes.problem
    if problem == nil, let x = shapes.expected {
        if let p = maskProblem(kpm, attn: false, cfg, x) ?? maskProblem(am, attn: true, cfg, x) { problem = p }
        else if out.shape != x.output { problem = "output shape \(out.shape), expected \(x.output)" }
        else if let w = x.weights, !passWeights || weights.shape != w { problem = "weights missing or of shape \(weights.shape), expected \(w)" }
        else if outputsOverlap(out.shape, out.strides) { problem = "output overlaps itself" }
        else if x.weights != nil && outputsOverlap(weights.shape, weights.strides) { problem = "weights overlap themselves" }
    } else {
        problem = problem ?? shapes.problem
    }
    let huge = hugeDim >= 0 || [q, k, v, out, weights].contains { $0.shape.contains { $0 >= 1 << 40 } }

    // 6. mh_mha_output_shapes.
    var outRank: Int32 = 0, wRank: Int32 = 0
    var outShape = [Int64](repeating: -7, count: 8), wShape = [Int64](repeating: -7, count: 8)
    let shapeStatus = mh_mha_output_shapes(module, q.pointer, k.pointer, v.pointer, &options, &outRank, &outShape, &wRank, &wShape)
    if let p = shapesProblem {
        expectError(shapeStatus, "mh_mha_output_shapes with \(p) [\(corrupted)]")
    } else if shapeStatus != MH_OK {
        if !(huge && shapeStatus == MH_ERR_OUT_OF_MEMORY) { fail("mh_mha_output_shapes rejected valid shapes: \(message()) [\(corrupted)]") }
    } else if let x = shapes.expected {
        let w = x.weights ?? []
        if Array(outShape.prefix(Int(outRank))) != x.output || Array(wShape.prefix(Int(wRank))) != w {
            fail("mh_mha_output_shapes gave \(outShape.prefix(Int(outRank))) / \(wShape.prefix(Int(wRank))), expected \(x.output) / \(w)")
        }
    }

    // 7. mh_mha_forward.
    func forward() -> mh_status {
        mh_mha_forward(module, q.pointer, k.pointer, v.pointer, kpm?.pointer, am?.pointer, &options, out.pointer,
                       passWeights ? weights.pointer : nil)
    }
    let forwardStatus = forward()
    if let problem {
        expectError(forwardStatus, "mh_mha_forward with \(problem) [\(corrupted)]")
        stillUsable(module, cfg)
        tally("forward rejected")
        return
    }
    if forwardStatus != MH_OK {
        if huge && forwardStatus == MH_ERR_OUT_OF_MEMORY { stillUsable(module, cfg); tally("forward out of memory (huge)"); return }
        fail("mh_mha_forward rejected a valid call: \(message()) [\(corrupted)]")
    }
    guard let x = shapes.expected, !huge else { tally("forward ok (huge, empty)"); return }

    // 8. What a successful call wrote.
    let writesWeights = options.need_weights != 0
    for (name, b, written) in [("output", out, true), ("weights", weights, writesWeights)] {
        let words = b.storage.bindMemory(to: UInt32.self, capacity: b.allocated)
        var logical = Set<Int>()
        if written { for index in b.indices() { logical.insert(b.offset(index)) } }
        for i in 0..<b.allocated {
            if logical.contains(i) == (words[i] == outputSentinel) {
                fail("\(name) element \(i) of \(b.allocated): \(logical.contains(i) ? "not written" : "written outside the view") (shape \(b.shape), strides \(b.strides))")
            }
        }
    }
    let first = (out.indices().map { out.float($0).bitPattern }, writesWeights ? weights.indices().map { weights.float($0).bitPattern } : [])
    guard forward() == MH_OK else { fail("a repeated forward failed: \(message())") }
    let second = (out.indices().map { out.float($0).bitPattern }, writesWeights ? weights.indices().map { weights.float($0).bitPattern } : [])
    if first != second { fail("a repeated forward gave different bits") }
    if specials { tally("forward ok, special values"); return }

    let expected = reference(cfg, parameters, x, q: q, k: k, v: v, kpm: kpm, am: am, causal: options.is_causal != 0,
                             average: options.average_attn_weights != 0)
    func compare(_ name: String, _ b: Buffer, _ values: [Double], _ index: ([Int]) -> Int) {
        let scale = values.reduce(1.0) { $1.isNaN ? $0 : max($0, abs($1)) }
        for i in b.indices() {
            let got = Double(b.float(i)), want = values[index(i)]
            // A descriptor that (legitimately) reads the NaN padding makes NaN results on both sides.
            let ok = want.isNaN ? got.isNaN : abs(got - want) <= 1e-4 * scale
            if !ok { fail("\(name)\(i) = \(got), reference \(want) [\(corrupted)]") }
        }
    }
    let (n, l, s) = (Int(x.N), Int(x.L), Int(x.S) + cfg.appended)
    compare("output", out, expected.output) { i in
        let (b, t, e) = !x.batched ? (0, i[0], i[1]) : (cfg.batchFirst ? (i[0], i[1], i[2]) : (i[1], i[0], i[2]))
        return (b * l + t) * cfg.E + e
    }
    _ = n
    if writesWeights {
        let average = options.average_attn_weights != 0
        compare("weights", weights, expected.weights) { i in
            let j = x.batched ? i : [0] + i
            return average ? (j[0] * l + j[1]) * s + j[2] : ((j[0] * cfg.H + j[1]) * l + j[2]) * s + j[3]
        }
    }
    tally(x.N * x.L == 0 ? "forward ok, empty, checked" : "forward ok, compared with the reference")
}

/// After an error the module must still run a plain call.
private func stillUsable(_ module: OpaquePointer, _ c: Config) {
    var q = [Float](repeating: 0.5, count: c.qdim), k = [Float](repeating: 0.25, count: c.kdim)
    var v = [Float](repeating: 1, count: c.vdim), o = [Float](repeating: 0, count: c.E)
    var options = mh_forward_options()
    mh_forward_options_init(&options)
    options.need_weights = 0
    var tq = mh_tensor(), tk = mh_tensor(), tv = mh_tensor(), to = mh_tensor()
    let status = q.withUnsafeMutableBytes { qp in
        k.withUnsafeMutableBytes { kp in
            v.withUnsafeMutableBytes { vp in
                o.withUnsafeMutableBytes { op in
                    mh_tensor_init_contiguous(&tq, qp.baseAddress, F32, 2, [1, Int64(c.qdim)])
                    mh_tensor_init_contiguous(&tk, kp.baseAddress, F32, 2, [1, Int64(c.kdim)])
                    mh_tensor_init_contiguous(&tv, vp.baseAddress, F32, 2, [1, Int64(c.vdim)])
                    mh_tensor_init_contiguous(&to, op.baseAddress, F32, 2, [1, Int64(c.E)])
                    return mh_mha_forward(module, &tq, &tk, &tv, nil, nil, &options, &to, nil)
                }
            }
        }
    }
    if status != MH_OK { fail("the module fails after an error: \(message())") }
}
