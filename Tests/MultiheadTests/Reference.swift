import Foundation
@testable import Multihead

/// An independent float64 implementation of multi-head attention, written from the math with
/// plain loops (no code shared with the engine): the oracle for qdim and for random shapes.
struct ReferenceAttention {
    var config: MultiheadAttentionConfig
    var parameters: [String: [Float]]

    /// Returns output and weights in the same layouts the engine uses.
    func callAsFunction(query: Tensor<Float>, key: Tensor<Float>, value: Tensor<Float>, keyPaddingMask: Mask?,
                        attnMask: Mask?, needWeights: Bool, average: Bool, isCausal: Bool)
        -> (output: [Double], weights: [Double]?) {
        let c = config
        let E = c.embedDim, H = c.numHeads, D = c.headDim
        let batched = query.rank == 3
        let N = batched ? query.shape[c.batchFirst ? 0 : 1] : 1
        let L = query.shape[batched && c.batchFirst ? 1 : 0]
        let S = key.shape[batched && c.batchFirst ? 1 : 0]
        func at(_ t: Tensor<Float>, _ n: Int, _ i: Int, _ f: Int) -> Double {
            let F = t.shape.last!
            if !batched { return Double(t.scalars[i * F + f]) }
            return Double(c.batchFirst ? t.scalars[(n * t.shape[1] + i) * F + f] : t.scalars[(i * N + n) * F + f])
        }
        func weight(_ which: Int) -> (w: [Float], inputs: Int) {
            if c.packedInputProjection { return (Array(parameters["in_proj_weight"]![(which * E * E)..<((which + 1) * E * E)]), E) }
            let name = ["q_proj_weight", "k_proj_weight", "v_proj_weight"][which]
            return (parameters[name]!, [c.qdim, c.kdim, c.vdim][which])
        }
        func project(_ t: Tensor<Float>, _ n: Int, rows: Int, which: Int) -> [[Double]] {
            let (w, inputs) = weight(which)
            return (0..<rows).map { i in
                (0..<E).map { e in
                    var s = parameters["in_proj_bias"].map { Double($0[which * E + e]) } ?? 0
                    for f in 0..<inputs { s += Double(w[e * inputs + f]) * at(t, n, i, f) }
                    return s
                }
            }
        }
        func maskValue(_ m: Mask?, _ index: Int) -> Double {
            switch m {
            case .none: return 0
            case .bool(let t): return t.scalars[index] ? -.infinity : 0
            case .float(let t): return Double(t.scalars[index])
            }
        }
        var output = [Double](repeating: 0, count: N * L * E)
        let Sx = S + (c.addBiasKV ? 1 : 0) + (c.addZeroAttn ? 1 : 0)
        var weights = [Double](repeating: 0, count: N * H * L * Sx)
        for n in 0..<N {
            let q = project(query, n, rows: L, which: 0)
            var k = project(key, n, rows: S, which: 1)
            var v = project(value, n, rows: S, which: 2)
            if c.addBiasKV {
                k.append(parameters["bias_k"]!.map(Double.init))
                v.append(parameters["bias_v"]!.map(Double.init))
            }
            if c.addZeroAttn {
                k.append([Double](repeating: 0, count: E))
                v.append([Double](repeating: 0, count: E))
            }
            var attended = [[Double]](repeating: [Double](repeating: 0, count: E), count: L)
            for h in 0..<H {
                for l in 0..<L {
                    var scores = [Double](repeating: 0, count: Sx)
                    for s in 0..<Sx {
                        var dot = 0.0
                        for d in 0..<D { dot += q[l][h * D + d] * k[s][h * D + d] }
                        scores[s] = dot / Double(D).squareRoot()
                        if s < S {
                            if let attnMask {
                                let index = attnMask.shape.count == 2 ? l * S + s : ((n * H + h) * L + l) * S + s
                                scores[s] += maskValue(attnMask, index)
                            }
                            if isCausal && s > l { scores[s] = -.infinity }
                            scores[s] += maskValue(keyPaddingMask, n * S + s)
                        }
                    }
                    let m = scores.max() ?? -.infinity
                    var p = [Double](repeating: 0, count: Sx)
                    if m > -.infinity {
                        let sum = scores.reduce(0) { $0 + Foundation.exp($1 - m) }
                        p = scores.map { Foundation.exp($0 - m) / sum }
                    }
                    for s in 0..<Sx {
                        weights[((n * H + h) * L + l) * Sx + s] = p[s]
                        for d in 0..<D { attended[l][h * D + d] += p[s] * v[s][h * D + d] }
                    }
                }
            }
            let wo = parameters["out_proj.weight"]!
            for l in 0..<L {
                for e in 0..<E {
                    var s = parameters["out_proj.bias"].map { Double($0[e]) } ?? 0
                    for f in 0..<E { s += Double(wo[e * E + f]) * attended[l][f] }
                    let index = !batched ? l * E + e : (c.batchFirst ? (n * L + l) * E + e : (l * N + n) * E + e)
                    output[index] = s
                }
            }
        }
        guard needWeights else { return (output, nil) }
        guard average else { return (output, weights) }
        var averaged = [Double](repeating: 0, count: N * L * Sx)
        for n in 0..<N {
            for h in 0..<H {
                for i in 0..<(L * Sx) { averaged[n * L * Sx + i] += weights[(n * H + h) * L * Sx + i] / Double(H) }
            }
        }
        return (output, averaged)
    }
}

/// Largest `|a - b|` over the tensor, relative to the larger of 1 and the expected tensor's max magnitude.
func relativeError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count)
    let scale = max(1, expected.map { abs($0) }.max() ?? 0)
    var worst = 0.0
    for (a, e) in zip(actual, expected) {
        if a.isNaN || e.isNaN { return a.isNaN && e.isNaN ? worst : .infinity }
        worst = max(worst, abs(Double(a) - e) / scale)
    }
    return worst
}
