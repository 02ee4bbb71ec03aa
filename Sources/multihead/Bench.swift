import ArgumentParser
import Foundation
import Multihead
import MultiheadKernels

/// Times the engine alone on the standard workloads. The comparison with PyTorch and ONNX
/// Runtime (same process, same threads, alternating runs) is `benchmarks/compare.py`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the standard workloads (median of repeated runs).")

    @Option(help: "Worker threads (0 = one per core).")
    var threads = 0

    @Option(help: "Timed runs per workload.")
    var runs = 7

    @Option(help: "Comma-separated workload names (default: all).")
    var only: String?

    @Flag(help: "List the workloads and exit.")
    var list = false

    @Flag(help: "Print one fork/join's cost for each executor (pinned, dispatch, plain) and exit.")
    var executor = false

    @Option(help: "Executor for the workloads: pinned, dispatch or plain (default: $MULTIHEAD_EXECUTOR, else pinned).")
    var executorKind: String?

    @Flag(help: "Measure the GEMM on 1 and all threads against the measured FMA peak instead.")
    var gemm = false

    func run() throws {
        if executor {
            print("executor  every_worker  median_us      p99_us")
            for kind in Engine.ExecutorKind.allCases {
                let engine = try Engine(options: .init(threads: threads, executor: kind))
                for everyWorker in [false, true] {
                    let t = engine.measureForkJoin(everyWorker: everyWorker)
                    print(kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + (everyWorker ? "yes" : "no ")
                        + String(format: "          %9.2f   %9.2f", t.median, t.p99))
                }
            }
            return
        }
        var kind = Engine.ExecutorKind.default
        if let executorKind {
            guard let parsed = Engine.ExecutorKind(rawValue: executorKind) else {
                throw ValidationError("unknown executor \"\(executorKind)\" (expected pinned, dispatch or plain)")
            }
            kind = parsed
        }
        let engine = try Engine(options: .init(threads: threads, executor: kind))
        let selected = only.map { Set($0.split(separator: ",").map(String.init)) }
        if list {
            for w in Workload.standard { print("\(w.name): \(w.summary)") }
            return
        }
        if gemm { return benchmarkGEMM(threads: engine.threadCount) }
        print("threads: \(engine.threadCount), executor: \(engine.executorKind.rawValue)")
        print("workload                          median ms   GFLOP/s")
        for workload in Workload.standard where selected?.contains(workload.name) ?? true {
            let prepared = try workload.prepare(engine: engine)
            _ = try prepared.run()   // warm-up: packs weights, fills workspaces
            var times: [Double] = []
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try prepared.run()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            let median = times.sorted()[times.count / 2]
            let gflops = workload.flops / (median * 1e6)
            print(workload.name.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: " %10.3f %9.1f", median, gflops))
        }
    }
}

extension Bench {
    func benchmarkGEMM(threads: Int) {
        print("micro-kernel ISA: \(KernelISA.selected)")
        print("threads  FMA peak GFLOP/s  GEMM 1024^3 GFLOP/s  % of peak  x one thread")
        var single = 0.0
        for t in Set([1, threads]).sorted() {
            let peak = GEMMBenchmark.fmaPeak(threads: t)
            let rate = GEMMBenchmark.parallelBenchmark(m: 1024, n: 1024, k: 1024, threads: t, iterations: runs)
            if t == 1 { single = rate }
            print(String(format: "%7d %17.1f %20.1f %9.0f%% %12.2f", t, peak, rate, 100 * rate / peak, rate / single))
        }
    }
}

/// One benchmark shape, shared by `bench` and the comparison script's definitions.
struct Workload {
    var name: String
    var N, L, S, E, H: Int
    var kdim: Int? = nil, vdim: Int? = nil
    var needWeights = false
    var causal = false
    var padding = false

    static let standard: [Workload] = [
        Workload(name: "seed-tiny", N: 5, L: 2, S: 2, E: 4, H: 2, needWeights: true),
        Workload(name: "bert-base", N: 8, L: 128, S: 128, E: 768, H: 12),
        Workload(name: "bert-base-weights", N: 8, L: 128, S: 128, E: 768, H: 12, needWeights: true),
        Workload(name: "bert-base-padding", N: 8, L: 128, S: 128, E: 768, H: 12, padding: true),
        Workload(name: "long-2k", N: 1, L: 2048, S: 2048, E: 1024, H: 16),
        Workload(name: "long-2k-causal", N: 1, L: 2048, S: 2048, E: 1024, H: 16, causal: true),
        Workload(name: "cross-attention", N: 4, L: 128, S: 512, E: 512, H: 8, kdim: 256, vdim: 384),
    ]

    var summary: String {
        "N=\(N) L=\(L) S=\(S) E=\(E) H=\(H)" + (kdim.map { " kdim=\($0)" } ?? "") + (vdim.map { " vdim=\($0)" } ?? "")
            + (needWeights ? " need_weights" : "") + (causal ? " causal" : "") + (padding ? " key_padding_mask" : "")
    }

    /// Multiply-adds x 2 of the projections and the attention products (causal counts half).
    var flops: Double {
        let (n, l, s, e) = (Double(N), Double(L), Double(S), Double(E))
        let projections = 2 * n * (l * e * e + s * e * Double(kdim ?? E) + s * e * Double(vdim ?? E) + l * e * e)
        let attention = 2 * 2 * n * l * s * e * (causal ? 0.5 : 1)
        return projections + attention
    }

    struct Prepared {
        var module: MultiheadAttention
        var query, key, value: Tensor<Float>
        var mask: Mask?
        var workload: Workload

        func run() throws -> Tensor<Float> {
            try module(query, key, value, keyPaddingMask: mask, needWeights: workload.needWeights,
                       isCausal: workload.causal).output
        }
    }

    func prepare(engine: Engine) throws -> Prepared {
        let m = try MultiheadAttention(embedDim: E, numHeads: H, kdim: kdim, vdim: vdim, engine: engine)
        let q = try Tensor<Float>(randomNormal: [L, N, E], seed: 1)
        let k = kdim == nil && S == L ? q : try Tensor<Float>(randomNormal: [S, N, kdim ?? E], seed: 2)
        let v = vdim == nil && S == L ? q : try Tensor<Float>(randomNormal: [S, N, vdim ?? E], seed: 3)
        var mask: Mask? = nil
        if padding {
            // Each sequence has its own length, from S down to S/2.
            mask = .bool(try Tensor(shape: [N, S], scalars: (0..<N * S).map { i in i % S >= S - (i / S) * S / (2 * N) }))
        }
        return Prepared(module: m, query: q, key: k, value: v, mask: mask, workload: self)
    }
}
