import Foundation
import XCTest
@testable import Multihead

/// Inputs a caller can get wrong, or make huge, through the Swift API: each is a thrown error
/// naming the argument (never a trap, hang or stray write), and the module keeps working. Several
/// cases are regressions of bugs found by fuzzing and review (tests/fuzz).
final class HardeningTests: XCTestCase {
    func assertThrows(_ expression: @autoclosure () throws -> Any, _ kind: (MultiheadError) -> Bool, _ fragments: [String],
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let error = error as? MultiheadError else { return XCTFail("not a MultiheadError: \(error)", file: file, line: line) }
            XCTAssert(kind(error), "wrong kind of error: \(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssert(error.message.contains(fragment), "'\(error.message)' does not mention '\(fragment)'", file: file, line: line)
            }
        }
    }

    func isOutOfMemory(_ e: MultiheadError) -> Bool { if case .outOfMemory = e { return true }; return false }
    func isShape(_ e: MultiheadError) -> Bool { if case .shape = e { return true }; return false }
    func isFormat(_ e: MultiheadError) -> Bool { if case .format = e { return true }; return false }

    /// A float32 view of `storage` (any memory that outlives the call), with explicit strides.
    func view(_ base: UnsafeMutablePointer<Float>, _ shape: [Int], _ strides: [Int]) -> TensorView {
        TensorView(base: base, element: .float32, shape: shape, strides: strides)
    }

    // MARK: Sizes the machine cannot hold (regressions: these trapped in the allocator, or hung)

    func testParametersLargerThanMemoryAreOutOfMemory() {
        // 3 * 2^20 * 2^20 floats of in_proj_weight: 12 TiB. The allocation used to trap.
        assertThrows(try MultiheadAttention(embedDim: 1 << 20, numHeads: 1), isOutOfMemory, ["parameters", "memory"])
        assertThrows(try MultiheadAttention(embedDim: 8, numHeads: 2, kdim: 1 << 40), isOutOfMemory, ["kdim=1099511627776"])
    }

    func testBroadcastInputsDescribingHugeScratchAreOutOfMemory() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        var storage = [Float](repeating: 0.5, count: 64)
        try storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            // N = 2^36 batches that all read the same 4 floats (stride 0): the scratch would need TiBs.
            let n = 1 << 36
            let q = view(base, [1, n, 4], [0, 0, 1])
            let out = MutableTensorView(base: base + 32, shape: [1, n, 4], strides: [0, 0, 1])
            assertThrows(try m.forward(query: q, key: q, value: q, options: ForwardOptions(needWeights: false), output: out, weights: nil),
                         isOutOfMemory, ["scratch", "N=\(n)"])
            assertThrows(try m.outputShapes(query: [1, n, 4], key: [1, n, 4], value: [1, n, 4]), isOutOfMemory, ["scratch"])
            // The same with a huge S instead.
            let s = 1 << 40
            let k = view(base, [s, 1, 4], [0, 0, 1])
            let q1 = view(base, [1, 1, 4], [4, 4, 1])
            let out1 = MutableTensorView(base: base + 32, shape: [1, 1, 4], strides: [4, 4, 1])
            assertThrows(try m.forward(query: q1, key: k, value: k, options: ForwardOptions(needWeights: false), output: out1, weights: nil),
                         isOutOfMemory, ["scratch", "S=\(s)"])
        }
    }

    func testResultsLargerThanMemoryAreOutOfMemory() throws {
        // The Swift API allocates the results: 2^40 weights (4 TiB) used to trap in the allocator.
        let m = try MultiheadAttention(embedDim: 1, numHeads: 1)
        let x = try Tensor<Float>(zeros: [1 << 20, 1])  // unbatched (L, E)
        assertThrows(try m(x, x, x), isOutOfMemory, ["attention weights", "[1048576, 1048576]", "memory"])
        assertThrows(try Tensor<Float>(zeros: [1 << 20, 1 << 20]), isOutOfMemory, ["tensor of shape [1048576, 1048576]"])
        assertThrows(try Tensor<Float>(randomNormal: [1 << 21, 1 << 20], seed: 1), isOutOfMemory, ["tensor"])
    }

    func testEmptyQueriesWithAHugeBatchReturnAtOnce() throws {
        // L = 0 and S = 0 with N = 2^40: the output has no elements; this used to loop over N.
        let m = try MultiheadAttention(embedDim: 4, numHeads: 1)
        var storage = [Float](repeating: 0, count: 16)
        try storage.withUnsafeMutableBufferPointer { p in
            let n = 1 << 40
            let q = view(p.baseAddress!, [0, n, 4], [0, 0, 1])
            let out = MutableTensorView(base: p.baseAddress!, shape: [0, n, 4], strides: [0, 0, 1])
            let weights = MutableTensorView(base: p.baseAddress!, shape: [n, 0, 0], strides: [0, 0, 1])
            let start = Date()
            try m.forward(query: q, key: q, value: q, output: out, weights: weights)
            XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        }
    }

    func testKeyCountOverflowIsAnError() throws {
        // S = Int.max keys in zero batches, plus bias_k: S + 1 overflowed (a trap).
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2, addBiasKV: true)
        var storage = [Float](repeating: 0, count: 16)
        try storage.withUnsafeMutableBufferPointer { p in
            let q = view(p.baseAddress!, [1, 0, 4], [0, 0, 1])
            let k = view(p.baseAddress!, [Int.max, 0, 4], [0, 0, 1])
            let out = MutableTensorView(base: p.baseAddress!, shape: [1, 0, 4], strides: [0, 0, 1])
            assertThrows(try m.forward(query: q, key: k, value: k, options: ForwardOptions(needWeights: false), output: out, weights: nil),
                         isOutOfMemory, ["key", "overflows"])
        }
    }

    // MARK: Empty sizes

    func testNoKeysGiveZeroAttention() throws {
        // S = 0: every query row has no key, which is the all-masked rule: output = out_proj.bias.
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        try m.setParameter("out_proj.bias", Tensor(shape: [4], scalars: [1, -2, 3, -4]))
        let q = try Tensor<Float>(randomNormal: [3, 2, 4], seed: 1)
        let none = try Tensor<Float>(zeros: [0, 2, 4])
        let (out, w) = try m(q, none, none)
        XCTAssertEqual(out.scalars, [Float]((0..<6).flatMap { _ in [1, -2, 3, -4] }))
        XCTAssertEqual(w!.shape, [2, 3, 0])
        // With add_zero_attn there is one key (the zero key): all weight on it, output = bias.
        let z = try MultiheadAttention(embedDim: 4, numHeads: 2, addZeroAttn: true)
        try z.setParameter("out_proj.bias", Tensor(shape: [4], scalars: [1, -2, 3, -4]))
        let (zout, zw) = try z(q, none, none)
        XCTAssertEqual(zw!.scalars, [Float](repeating: 1, count: 6))
        XCTAssertEqual(zout.scalars, out.scalars)
        // N = 0 and L = 0: empty results.
        let (e1, w1) = try m(try Tensor<Float>(zeros: [3, 0, 4]), try Tensor<Float>(zeros: [5, 0, 4]), try Tensor<Float>(zeros: [5, 0, 4]))
        XCTAssertEqual(e1.shape, [3, 0, 4]); XCTAssertEqual(w1!.shape, [0, 3, 5])
        let (e2, w2) = try m(try Tensor<Float>(zeros: [0, 2, 4]), q, q)
        XCTAssertEqual(e2.shape, [0, 2, 4]); XCTAssertEqual(w2!.shape, [2, 0, 3])
    }

    // MARK: Output layouts

    func testOutputsThatOverlapThemselvesAreRejected() throws {
        let m = try MultiheadAttention(embedDim: 4, numHeads: 2)
        var storage = [Float](repeating: 0, count: 256)
        try storage.withUnsafeMutableBufferPointer { p in
            let b = p.baseAddress!
            let q = view(b, [3, 2, 4], [8, 4, 1])
            let options = ForwardOptions(needWeights: false)
            for (shape, strides) in [([3, 2, 4], [8, 0, 1]),      // the batch axis broadcast
                                     ([3, 2, 4], [1, 1, 1]),      // interleaved strides
                                     ([3, 2, 4], [4, 4, 1])] {    // batches on top of each other
                let out = MutableTensorView(base: b + 64, shape: shape, strides: strides)
                assertThrows(try m.forward(query: q, key: q, value: q, options: options, output: out, weights: nil),
                             isShape, ["output", "\(strides)", "share memory"])
            }
            // Weights on top of the output.
            let out = MutableTensorView(base: b + 64, shape: [3, 2, 4], strides: [8, 4, 1])
            let weights = MutableTensorView(base: b + 70, shape: [2, 3, 3], strides: [9, 3, 1])
            assertThrows(try m.forward(query: q, key: q, value: q, output: out, weights: weights), isShape, ["output and weights overlap"])
            // Stride 0 on an axis of size 1, and negative strides, are fine and give the same bits.
            let plain = MutableTensorView(base: b + 64, shape: [3, 2, 4], strides: [8, 4, 1])
            try m.forward(query: q, key: q, value: q, options: options, output: plain, weights: nil)
            let expected = Array(p[64..<88])
            let reversed = MutableTensorView(base: b + 128 + 23, shape: [3, 2, 4], strides: [-8, -4, -1])
            try m.forward(query: q, key: q, value: q, options: options, output: reversed, weights: nil)
            XCTAssertEqual(Array(p[128..<152]).reversed(), expected)
            let q1 = view(b, [3, 1, 4], [8, 4, 1])
            let single = MutableTensorView(base: b + 200, shape: [3, 1, 4], strides: [4, 0, 1])
            try m.forward(query: q1, key: q1, value: q1, options: options, output: single, weights: nil)
        }
    }

    func testTheModuleKeepsWorkingAfterErrors() throws {
        let m = try MultiheadAttention(embedDim: 8, numHeads: 2, kdim: 6, seed: 3)
        let q = try Tensor<Float>(randomNormal: [4, 2, 8], seed: 1)
        let k = try Tensor<Float>(randomNormal: [5, 2, 6], seed: 2)
        let v = try Tensor<Float>(randomNormal: [5, 2, 8], seed: 3)
        let before = try m(q, k, v)
        XCTAssertThrowsError(try m(q, q, v))
        XCTAssertThrowsError(try m(q, k, v, attnMask: .float(try Tensor(zeros: [4, 4]))))
        XCTAssertThrowsError(try m.setParameter("k_proj_weight", Tensor(zeros: [8, 8])))
        XCTAssertThrowsError(try m.loadSafetensors(path: "/nonexistent.safetensors"))
        XCTAssertThrowsError(try m.loadStateDict(["bogus": try Tensor(zeros: [1])]))
        let after = try m(q, k, v)
        XCTAssertEqual(after.output.scalars.map(\.bitPattern), before.output.scalars.map(\.bitPattern))
        XCTAssertEqual(after.weights!.scalars.map(\.bitPattern), before.weights!.scalars.map(\.bitPattern))
    }

    // MARK: Malformed safetensors (beyond SafetensorsTests)

    func file(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
        let h = Array(header.utf8)
        var out = Data()
        var n = (length ?? UInt64(h.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: data)
        return out
    }

    func testMalformedSafetensorsFound() {
        let four: [UInt8] = [0, 0, 0, 0]
        // Found by fuzz-safetensors: an offset past Int.max trapped while the error message was made.
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4.1e31]}}"#, data: four)),
                     isFormat, ["run past the data", "4.1e+31"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[1e300,1e301]}}"#, data: four)),
                     isFormat, ["run past the data"])
        // Absurd sizes, offsets and types.
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}"#, data: four)),
                     isFormat, ["invalid dimension"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: four)),
                     isFormat, ["invalid dimension"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, data: four)),
                     isFormat, ["invalid dimension"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: four)),
                     isFormat, ["data_offsets"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.5]}}"#, data: four)),
                     isFormat, ["data_offsets"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, data: four)),
                     isFormat, ["data_offsets"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}}"#, data: four)),
                     isFormat, ["data_offsets"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}"#, data: four)), isFormat, ["dtype"])
        assertThrows(try SafetensorsFile(data: file(#"{"a":[1,2]}"#)), isFormat, ["'a' is not an object"])
        assertThrows(try SafetensorsFile(data: file(#"{"__metadata__":[1]}"#)), isFormat, ["__metadata__"])
        // Header length 0 (no JSON at all), the maximum length, and past it.
        assertThrows(try SafetensorsFile(data: file("")), isFormat, ["JSON"])
        assertThrows(try SafetensorsFile(data: file("{}", length: UInt64.max)), isFormat, ["runs past the end"])
        var big = Data(count: 8 + SafetensorsFile.maximumHeaderLength + 1)
        withUnsafeBytes(of: UInt64(SafetensorsFile.maximumHeaderLength + 1).littleEndian) { big.replaceSubrange(0..<8, with: $0) }
        assertThrows(try SafetensorsFile(data: big), isFormat, ["exceeds the limit"])
        // Not UTF-8, and nesting far past any real header.
        var latin = file("{}")
        latin[9] = 0xFF
        assertThrows(try SafetensorsFile(data: latin), isFormat, ["JSON"])
        assertThrows(try SafetensorsFile(data: file(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)))
                     , isFormat, [])
        // Truncated anywhere: every prefix of a good file is rejected, and none traps.
        let good = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}"#,
                        data: [0, 0, 128, 63, 0, 0, 0, 64, 64, 64])
        XCTAssertNoThrow(try SafetensorsFile(data: good))
        for cut in 0..<good.count { XCTAssertThrowsError(try SafetensorsFile(data: good.prefix(cut)), "prefix of \(cut) bytes") }
    }

    func testEmptyAndDirectoryPathsAreErrors() throws {
        // An empty file is a format error. Reading one through Foundation leaked 4 KiB (valgrind);
        // under `swift test --sanitize=address` LeakSanitizer would report a regression.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("mh-empty-\(getpid()).safetensors").path
        XCTAssert(FileManager.default.createFile(atPath: empty, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for _ in 0..<3 {
            assertThrows(try SafetensorsFile(path: empty), isFormat, ["0 bytes", empty])
        }
        assertThrows(try SafetensorsFile(path: FileManager.default.temporaryDirectory.path), { if case .io = $0 { return true }; return false },
                     ["cannot read"])
    }

    // MARK: Concurrency (exercised under ThreadSanitizer by `swift test --sanitize=thread`)

    func testConcurrentForwardsOnOneModuleGiveTheSameBits() throws {
        let engine = try Engine(threads: 2)
        let m = try MultiheadAttention(embedDim: 64, numHeads: 4, seed: 5, engine: engine)
        // Large enough to run on the workers, and a tiny one that runs on the calling thread.
        let big = (q: try Tensor<Float>(randomNormal: [70, 2, 64], seed: 1), k: try Tensor<Float>(randomNormal: [66, 2, 64], seed: 2))
        let small = try Tensor<Float>(randomNormal: [3, 1, 64], seed: 3)
        let expectedBig = try m(big.q, big.k, big.k)
        let expectedSmall = try m(small, small, small, isCausal: true)
        let failures = NSLock()
        var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<6 {
                do {
                    if (i + thread) % 2 == 0 {
                        let r = try m(big.q, big.k, big.k)
                        if r.output.scalars != expectedBig.output.scalars || r.weights!.scalars != expectedBig.weights!.scalars {
                            failures.withLock { mismatches += 1 }
                        }
                    } else {
                        let r = try m(small, small, small, isCausal: true)
                        if r.output.scalars != expectedSmall.output.scalars { failures.withLock { mismatches += 1 } }
                    }
                } catch {
                    failures.withLock { mismatches += 1 }
                }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testEnginesCreatedAndDestroyedConcurrently() throws {
        let q = try Tensor<Float>(randomNormal: [5, 2, 8], seed: 4)
        let expected = try MultiheadAttention(embedDim: 8, numHeads: 2, seed: 9, engine: Engine(threads: 1))(q, q, q).output.scalars
        let lock = NSLock()
        var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for _ in 0..<4 {
                do {
                    let engine = try Engine(threads: 1 + thread % 2)
                    let m = try MultiheadAttention(embedDim: 8, numHeads: 2, seed: 9, engine: engine)
                    if try m(q, q, q).output.scalars != expected { lock.withLock { failures.append("thread \(thread): different result") } }
                } catch {
                    lock.withLock { failures.append("thread \(thread): \(error)") }
                }
            }
        }
        XCTAssertEqual(failures, [])
    }

    func testSettingParametersDuringForwardsIsSafe() throws {
        let m = try MultiheadAttention(embedDim: 16, numHeads: 2, seed: 1)
        let q = try Tensor<Float>(randomNormal: [6, 2, 16], seed: 2)
        let old = try m(q, q, q).output.scalars
        let newBias = try Tensor<Float>(shape: [16], scalars: (0..<16).map { Float($0) })
        let m2 = try MultiheadAttention(embedDim: 16, numHeads: 2, seed: 1)
        try m2.setParameter("out_proj.bias", newBias)
        let new = try m2(q, q, q).output.scalars
        let lock = NSLock()
        var unexpected = 0
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for i in 0..<20 {
                if thread == 0 {
                    try? m.setParameter("out_proj.bias", i % 2 == 0 ? newBias : Tensor(zeros: [16]))
                } else if let out = try? m(q, q, q).output.scalars, out != old && out != new {
                    lock.withLock { unexpected += 1 }
                }
            }
        }
        XCTAssertEqual(unexpected, 0, "a forward saw a mix of old and new parameters")
    }
}
