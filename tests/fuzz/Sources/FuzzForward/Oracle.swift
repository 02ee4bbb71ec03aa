import CMultiheadHeader
import Foundation

// What the C contract says about a call, written independently of the library: which descriptors
// must be rejected, which calls must succeed, and what a successful call computes (float64).

let F32 = Int32(MH_DTYPE_F32.rawValue)
let BOOL = Int32(MH_DTYPE_BOOL.rawValue)

/// A module's configuration with the defaults resolved.
struct Config {
    var E, H, kdim, vdim, qdim: Int
    var bias, addBiasKV, addZeroAttn, batchFirst: Bool
    var D: Int { E / H }
    var packed: Bool { kdim == E && vdim == E && qdim == E }
    var appended: Int { (addBiasKV ? 1 : 0) + (addZeroAttn ? 1 : 0) }
}

/// Why the descriptor breaks the header's rules for every tensor (rank, dtype, negative size,
/// overflowing element count or extent, NULL data), or nil. `memory` adds the extent and data
/// checks that mh_mha_forward makes and mh_mha_output_shapes does not.
func descriptorProblem(_ t: mh_tensor, allowBool: Bool, memory: Bool) -> String? {
    guard t.dtype == F32 || (allowBool && t.dtype == BOOL) else { return "dtype \(t.dtype)" }
    guard (0...8).contains(t.rank) else { return "rank \(t.rank)" }
    let rank = Int(t.rank)
    let shape = withUnsafeBytes(of: t.shape) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
    let strides = withUnsafeBytes(of: t.strides) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
    if shape.contains(where: { $0 < 0 }) { return "negative size" }
    var elements: Int64 = 1
    var extent: UInt64 = 0
    for (size, stride) in zip(shape, strides) {
        let (e, o1) = elements.multipliedReportingOverflow(by: size)
        if o1 { return "element count overflows" }
        elements = e
        let (span, o2) = stride.magnitude.multipliedReportingOverflow(by: UInt64(max(size - 1, 0)))
        let (x, o3) = extent.addingReportingOverflow(span)
        if memory && (o2 || o3 || x >= UInt64(Int64.max / 8)) { return "extent overflows" }
        extent = x
    }
    if memory && elements > 0 && t.data == nil { return "NULL data" }
    return nil
}

/// Whether every element the descriptor claims lies inside the buffer (a call is only made when
/// it does, or when the library must reject the descriptor anyway).
func insideBuffer(_ b: Buffer) -> Bool {
    let shape = b.shape, strides = b.strides
    if shape.contains(0) { return true }
    if b.descriptor.data == nil { return false }
    var low: Int64 = 0, high: Int64 = 0
    for (size, stride) in zip(shape, strides) {
        let (reach, overflow) = stride.multipliedReportingOverflow(by: size - 1)
        if overflow { return false }
        if reach < 0 { low += reach } else { high += reach }
        if low < -(1 << 40) || high > 1 << 40 { return false }
    }
    return Int64(b.origin) + low >= 0 && Int64(b.origin) + high < Int64(b.allocated)
}

/// True when two elements of an output share memory by the library's rule: sorted by |stride|,
/// each dimension of size > 1 must step past what the smaller ones span.
func outputsOverlap(_ shape: [Int64], _ strides: [Int64]) -> Bool {
    if shape.contains(0) { return false }
    var span: UInt64 = 0
    for (size, stride) in zip(shape, strides).filter({ $0.0 > 1 }).sorted(by: { $0.1.magnitude < $1.1.magnitude }) {
        if stride.magnitude <= span { return true }
        span += stride.magnitude * UInt64(size - 1)
    }
    return false
}

/// The shapes a call must have, from the query's rank and the configuration.
struct Expected {
    var batched: Bool
    var N, L, S: Int64
    var output: [Int64]
    var weights: [Int64]?
}

/// Why query/key/value do not fit the module (nil: they fit), and the shapes they imply.
func expectedShapes(_ c: Config, q: [Int64], k: [Int64], v: [Int64], needWeights: Bool, average: Bool)
    -> (problem: String?, expected: Expected?) {
    guard q.count == 2 || q.count == 3 else { return ("query rank \(q.count)", nil) }
    guard k.count == q.count, v.count == q.count else { return ("key/value rank", nil) }
    let batched = q.count == 3
    let (batchAxis, seqAxis) = !batched ? (-1, 0) : (c.batchFirst ? (0, 1) : (1, 0))
    let f = q.count - 1
    guard q[f] == c.qdim, k[f] == c.kdim, v[f] == c.vdim else { return ("feature sizes", nil) }
    let N = batched ? q[batchAxis] : 1
    if batched { guard k[batchAxis] == N, v[batchAxis] == N else { return ("batch sizes", nil) } }
    let L = q[seqAxis], S = k[seqAxis]
    guard v[seqAxis] == S else { return ("key/value lengths", nil) }
    let E = Int64(c.E), H = Int64(c.H)
    let output = batched ? (c.batchFirst ? [N, L, E] : [L, N, E]) : [L, E]
    var weights: [Int64]? = nil
    if needWeights {
        let keys = S &+ Int64(c.appended)
        let per = average ? [L, keys] : [H, L, keys]
        weights = batched ? [N] + per : per
    }
    return (nil, Expected(batched: batched, N: N, L: L, S: S, output: output, weights: weights))
}

/// Why a mask does not fit (nil: it fits).
func maskProblem(_ m: Buffer?, attn: Bool, _ c: Config, _ x: Expected) -> String? {
    guard let m else { return nil }
    let shape = m.shape
    if !attn { return shape == (x.batched ? [x.N, x.S] : [x.S]) ? nil : "key_padding_mask shape \(shape)" }
    if shape.count == 2 { return shape == [x.L, x.S] ? nil : "attn_mask shape \(shape)" }
    let (nh, overflow) = x.N.multipliedReportingOverflow(by: Int64(c.H))
    if shape.count == 3, !overflow, shape == [nh, x.L, x.S] { return nil }
    return "attn_mask shape \(shape)"
}

/// The float64 forward, reading every input through its descriptor: the same math as
/// bindings/python/tests/reference.py, with Multihead's documented choices (a row with every key
/// masked gets zero attention; is_causal hides keys after the query among the S given keys; bool
/// masks hide a key whatever its score).
func reference(_ c: Config, _ p: [String: [Float]], _ x: Expected, q: Buffer, k: Buffer, v: Buffer,
               kpm: Buffer?, am: Buffer?, causal: Bool, average: Bool) -> (output: [Double], weights: [Double]) {
    let (N, L, S) = (Int(x.N), Int(x.L), Int(x.S))
    let (E, H, D) = (c.E, c.H, c.D)
    let keys = S + c.appended
    func index(_ n: Int, _ i: Int, _ f: Int) -> [Int] { !x.batched ? [i, f] : (c.batchFirst ? [n, i, f] : [i, n, f]) }
    func weight(_ which: Int) -> (w: [Float], inputs: Int) {
        if c.packed { return (Array(p["in_proj_weight"]![(which * E * E)..<((which + 1) * E * E)]), E) }
        return (p[["q_proj_weight", "k_proj_weight", "v_proj_weight"][which]]!, [c.qdim, c.kdim, c.vdim][which])
    }
    func project(_ t: Buffer, _ n: Int, rows: Int, _ which: Int) -> [[Double]] {
        let (w, inputs) = weight(which)
        return (0..<rows).map { i in
            (0..<E).map { e in
                var s = p["in_proj_bias"].map { Double($0[which * E + e]) } ?? 0
                for f in 0..<inputs { s += Double(w[e * inputs + f]) * Double(t.float(index(n, i, f))) }
                return s
            }
        }
    }
    func mask(_ m: Buffer, _ index: [Int]) -> Double {
        if m.descriptor.dtype == BOOL { return m.byte(index) != 0 ? -.infinity : 0 }
        return Double(m.float(index))
    }
    var output = [Double](repeating: 0, count: N * L * E)  // [n, l, e]
    var weights = [Double](repeating: 0, count: N * H * L * keys)  // [n, h, l, s]
    for n in 0..<N {
        let Q = project(q, n, rows: L, 0)
        var K = project(k, n, rows: S, 1), V = project(v, n, rows: S, 2)
        if c.addBiasKV {
            K.append(p["bias_k"]!.map(Double.init))
            V.append(p["bias_v"]!.map(Double.init))
        }
        if c.addZeroAttn {
            K.append([Double](repeating: 0, count: E))
            V.append([Double](repeating: 0, count: E))
        }
        var attended = [[Double]](repeating: [Double](repeating: 0, count: E), count: L)
        for h in 0..<H {
            for l in 0..<L {
                var scores = (0..<keys).map { s in
                    (0..<D).reduce(0.0) { $0 + Q[l][h * D + $1] * K[s][h * D + $1] } / Double(D).squareRoot()
                }
                for s in 0..<S {
                    if let am {
                        let value = mask(am, am.rank == 2 ? [l, s] : [(x.batched ? n * H : 0) + h, l, s])
                        if am.descriptor.dtype == BOOL { if value != 0 { scores[s] = -.infinity } } else { scores[s] += value }
                    }
                    if let kpm {
                        let value = mask(kpm, x.batched ? [n, s] : [s])
                        if kpm.descriptor.dtype == BOOL { if value != 0 { scores[s] = -.infinity } } else { scores[s] += value }
                    }
                    if causal && s > l { scores[s] = -.infinity }
                }
                let top = scores.max() ?? -.infinity
                var probabilities = [Double](repeating: 0, count: keys)
                if top != -.infinity {
                    let e = scores.map { Foundation.exp($0 - top) }
                    let sum = e.reduce(0, +)
                    probabilities = e.map { $0 / sum }
                }
                for s in 0..<keys {
                    weights[((n * H + h) * L + l) * keys + s] = probabilities[s]
                    for d in 0..<D { attended[l][h * D + d] += probabilities[s] * V[s][h * D + d] }
                }
            }
        }
        let wo = p["out_proj.weight"]!
        for l in 0..<L {
            for e in 0..<E {
                var s = p["out_proj.bias"].map { Double($0[e]) } ?? 0
                for j in 0..<E { s += Double(wo[e * E + j]) * attended[l][j] }
                output[(n * L + l) * E + e] = s
            }
        }
    }
    if average {
        var averaged = [Double](repeating: 0, count: N * L * keys)
        for n in 0..<N {
            for h in 0..<H {
                for i in 0..<(L * keys) { averaged[n * L * keys + i] += weights[(n * H + h) * L * keys + i] / Double(H) }
            }
        }
        return (output, averaged)
    }
    return (output, weights)
}
