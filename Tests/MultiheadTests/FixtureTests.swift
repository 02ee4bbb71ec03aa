import Foundation
import XCTest
@testable import Multihead

/// One golden case written by `scripts/make_fixtures.py` from real PyTorch.
struct Fixture {
    var name: String
    var config: [String: Any]
    var file: SafetensorsFile

    static func directory(_ sub: String) -> URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(sub)
    }

    static func all(_ sub: String = "mha") throws -> [Fixture] {
        let dir = directory(sub)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        return try names.map { try Fixture(path: dir.appendingPathComponent($0).path) }
    }

    init(path: String) throws {
        file = try SafetensorsFile(path: path)
        name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let json = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8))
        config = json as! [String: Any]
    }

    func flag(_ key: String) -> Bool { (config[key] as? NSNumber)?.boolValue ?? false }
    func int(_ key: String) -> Int? { (config[key] as? NSNumber)?.intValue }

    func module() throws -> MultiheadAttention {
        let m = try MultiheadAttention(
            embedDim: int("embed_dim")!, numHeads: int("num_heads")!, bias: flag("bias"), addBiasKV: flag("add_bias_kv"),
            addZeroAttn: flag("add_zero_attn"), kdim: int("kdim"), vdim: int("vdim"), batchFirst: flag("batch_first"))
        var dict: [String: Tensor<Float>] = [:]
        for name in file.names where name.hasPrefix("param.") {
            dict[String(name.dropFirst(6))] = try file.floatTensor(name)
        }
        try m.loadStateDict(dict)
        return m
    }

    func mask(_ name: String) throws -> Mask? {
        guard file.entries[name] != nil else { return nil }
        return try file.dtype(name) == "BOOL" ? .bool(file.boolTensor(name)) : .float(file.floatTensor(name))
    }

    func tensor(_ name: String) throws -> Tensor<Float> { try file.floatTensor(name) }
}

final class FixtureTests: XCTestCase {
    /// Compares with PyTorch. Where PyTorch gave NaN (a row whose keys are all masked, in some or
    /// all heads) the engine must give its documented value instead, zero attention for those
    /// heads, which the float64 reference computes.
    func check(_ fixture: Fixture, engine: Engine = .shared, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try fixture.module()
        let needWeights = fixture.flag("need_weights")
        let inputs = (query: try fixture.tensor("query"), key: try fixture.tensor("key"), value: try fixture.tensor("value"),
                      kpm: try fixture.mask("key_padding_mask"), attn: try fixture.mask("attn_mask"))
        let (output, weights) = try m.forward(
            query: inputs.query, key: inputs.key, value: inputs.value, keyPaddingMask: inputs.kpm, needWeights: needWeights,
            attnMask: inputs.attn, averageAttnWeights: fixture.flag("average_attn_weights"), isCausal: fixture.flag("is_causal"))
        let expected = try fixture.tensor("expected.output")
        let reference = ReferenceAttention(config: m.config, parameters: m.stateDict().mapValues(\.scalars))(
            query: inputs.query, key: inputs.key, value: inputs.value, keyPaddingMask: inputs.kpm, attnMask: inputs.attn,
            needWeights: needWeights, average: fixture.flag("average_attn_weights"), isCausal: fixture.flag("is_causal"))
        XCTAssertEqual(output.shape, expected.shape, "\(fixture.name): output shape", file: file, line: line)
        let expectedOutput: [Double] = expected.scalars.enumerated().map { i, x in x.isNaN ? reference.output[i] : Double(x) }
        XCTAssert(output.scalars.allSatisfy { $0.isFinite }, "\(fixture.name): output has non-finite values", file: file, line: line)
        let outputError = relativeError(output.scalars, expectedOutput)
        XCTAssertLessThan(outputError, 1e-5, "\(fixture.name): output differs from PyTorch", file: file, line: line)
        XCTAssertLessThan(relativeError(output.scalars, reference.output), 1e-5, "\(fixture.name): output differs from the float64 reference", file: file, line: line)
        if needWeights {
            let expectedWeights = try fixture.tensor("expected.weights")
            guard let weights else { return XCTFail("\(fixture.name): no weights", file: file, line: line) }
            XCTAssertEqual(weights.shape, expectedWeights.shape, "\(fixture.name): weights shape", file: file, line: line)
            let error = relativeError(weights.scalars, expectedWeights.scalars.enumerated().map { i, x in x.isNaN ? reference.weights![i] : Double(x) })
            XCTAssertLessThan(error, 1e-5, "\(fixture.name): weights differ from PyTorch", file: file, line: line)
        } else {
            XCTAssertNil(weights, file: file, line: line)
        }
    }

    func testEveryPyTorchFixture() throws {
        let fixtures = try Fixture.all()
        XCTAssertGreaterThan(fixtures.count, 100)
        for fixture in fixtures { try check(fixture) }
    }

    func testSeedExamples() throws {
        for fixture in try Fixture.all("seed") { try check(fixture) }
    }

    /// Same inputs, same bits, whatever the thread count.
    func testBitIdenticalAcrossThreadCounts() throws {
        let fixtures = try Fixture.all().filter { $0.flag("need_weights") }.prefix(20)
        for fixture in fixtures {
            var results: [[Float]] = []
            for threads in [1, 2, 3, 8] {
                let engine = try Engine(threads: threads)
                let m = try fixture.module()
                let m2 = MultiheadAttention(config: m.config, engine: engine)
                try m2.loadStateDict(m.stateDict())
                let (o, w) = try m2.forward(
                    query: fixture.tensor("query"), key: fixture.tensor("key"), value: fixture.tensor("value"),
                    keyPaddingMask: fixture.mask("key_padding_mask"), attnMask: fixture.mask("attn_mask"),
                    averageAttnWeights: fixture.flag("average_attn_weights"), isCausal: fixture.flag("is_causal"))
                results.append(o.scalars + (w?.scalars ?? []))
            }
            for r in results.dropFirst() {
                XCTAssertEqual(r.map(\.bitPattern), results[0].map(\.bitPattern), "\(fixture.name): bits differ across thread counts")
            }
        }
    }
}
