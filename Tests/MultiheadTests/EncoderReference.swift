import Foundation
@testable import Multihead

/// An independent float64 `TransformerEncoderLayer` / `TransformerEncoder`, written from the
/// math with plain loops (no code shared with the engine): the second oracle beside PyTorch's
/// fixtures. Layout: everything batch-major `[N][L][E]`.
struct ReferenceEncoderLayer {
    var config: TransformerEncoderLayerConfig
    var parameters: [String: [Double]]

    init(config: TransformerEncoderLayerConfig, parameters: [String: Tensor<Float>]) {
        self.config = config
        self.parameters = parameters.mapValues { $0.scalars.map(Double.init) }
    }

    func p(_ name: String) -> [Double]? { parameters[name] }

    func layerNorm(_ x: [Double], weight: [Double]?, bias: [Double]?, eps: Double) -> [Double] {
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
        return x.enumerated().map { j, v in
            (v - mean) / (variance + eps).squareRoot() * (weight?[j] ?? 1) + (bias?[j] ?? 0)
        }
    }

    func linear(_ x: [Double], _ prefix: String, outputs: Int) -> [Double] {
        let w = p(prefix + ".weight")!, b = p(prefix + ".bias")
        let inputs = x.count
        return (0..<outputs).map { o in
            var s = b?[o] ?? 0
            for i in 0..<inputs { s += w[o * inputs + i] * x[i] }
            return s
        }
    }

    /// Self-attention of one sequence `x` `[L][E]`; `maskValue(h, l, s)` is the additive mask.
    func attention(_ x: [[Double]], maskValue: (Int, Int, Int) -> Double) -> [[Double]] {
        let E = config.dModel, H = config.nhead, D = E / H, L = x.count
        let w = p("self_attn.in_proj_weight")!, b = p("self_attn.in_proj_bias")
        func project(_ row: [Double], _ which: Int) -> [Double] {
            (0..<E).map { e in
                var s = b?[which * E + e] ?? 0
                for f in 0..<E { s += w[(which * E + e) * E + f] * row[f] }
                return s
            }
        }
        let q = x.map { project($0, 0) }, k = x.map { project($0, 1) }, v = x.map { project($0, 2) }
        var attended = [[Double]](repeating: [Double](repeating: 0, count: E), count: L)
        for h in 0..<H {
            for l in 0..<L {
                var scores = (0..<L).map { s -> Double in
                    var dot = 0.0
                    for d in 0..<D { dot += q[l][h * D + d] * k[s][h * D + d] }
                    return dot / Double(D).squareRoot() + maskValue(h, l, s)
                }
                let m = scores.max()!
                if m == -.infinity { continue }
                scores = scores.map { Foundation.exp($0 - m) }
                let sum = scores.reduce(0, +)
                for s in 0..<L {
                    for d in 0..<D { attended[l][h * D + d] += scores[s] / sum * v[s][h * D + d] }
                }
            }
        }
        return attended.map { linear($0, "self_attn.out_proj", outputs: E) }
    }

    func activation(_ x: Double) -> Double {
        switch config.activation {
        case .relu: return max(x, 0)
        case .gelu: return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
        }
    }

    /// One sequence through the layer.
    func callAsFunction(_ x: [[Double]], maskValue: (Int, Int, Int) -> Double) -> [[Double]] {
        let c = config
        let norm1 = { (r: [Double]) in layerNorm(r, weight: p("norm1.weight"), bias: p("norm1.bias"), eps: c.layerNormEps) }
        let norm2 = { (r: [Double]) in layerNorm(r, weight: p("norm2.weight"), bias: p("norm2.bias"), eps: c.layerNormEps) }
        let feedForward = { (r: [Double]) in
            linear(linear(r, "linear1", outputs: c.dimFeedforward).map(activation), "linear2", outputs: c.dModel)
        }
        func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map(+) }
        if c.normFirst {
            let a = attention(x.map(norm1), maskValue: maskValue)
            let h = zip(x, a).map { add($0, $1) }
            return h.map { add($0, feedForward(norm2($0))) }
        }
        let h = zip(x, attention(x, maskValue: maskValue)).map { norm1(add($0, $1)) }
        return h.map { norm2(add($0, feedForward($0))) }
    }
}

/// Runs reference layers (and a final norm) over a fixture-shaped source, returning the output
/// in the source's layout.
func referenceEncoder(layers: [ReferenceEncoderLayer], norm: (weight: [Double]?, bias: [Double]?, eps: Double)?,
                      src: Tensor<Float>, mask: Mask?, keyPaddingMask: Mask?, isCausal: Bool) -> [Double] {
    let c = layers[0].config
    let batched = src.rank == 3
    let N = batched ? src.shape[c.batchFirst ? 0 : 1] : 1
    let L = src.shape[batched && !c.batchFirst ? 0 : (batched ? 1 : 0)]
    let E = c.dModel, H = c.nhead
    func index(_ n: Int, _ l: Int, _ e: Int) -> Int {
        !batched ? l * E + e : (c.batchFirst ? (n * L + l) * E + e : (l * N + n) * E + e)
    }
    func value(_ m: Mask?, _ i: Int) -> Double {
        switch m {
        case .none: return 0
        case .bool(let t): return t.scalars[i] ? -.infinity : 0
        case .float(let t): return Double(t.scalars[i])
        }
    }
    var output = [Double](repeating: 0, count: src.scalars.count)
    for n in 0..<N {
        var x = (0..<L).map { l in (0..<E).map { Double(src.scalars[index(n, l, $0)]) } }
        let maskValue = { (h: Int, l: Int, s: Int) -> Double in
            var v = value(keyPaddingMask, n * L + s)
            if let mask {
                v += value(mask, mask.shape.count == 2 ? l * L + s : ((n * H + h) * L + l) * L + s)
            } else if isCausal && s > l {
                v = -.infinity
            }
            return v
        }
        for layer in layers { x = layer(x, maskValue: maskValue) }
        if let norm { x = x.map { layers[0].layerNorm($0, weight: norm.weight, bias: norm.bias, eps: norm.eps) } }
        for l in 0..<L { for e in 0..<E { output[index(n, l, e)] = x[l][e] } }
    }
    return output
}
