import Foundation
import XCTest
@testable import Multihead

/// The encoder fixtures written by `scripts/make_encoder_fixtures.py` from real PyTorch.
extension Fixture {
    func encoderLayerConfig() throws -> TransformerEncoderLayerConfig {
        try TransformerEncoderLayerConfig(
            dModel: int("d_model")!, nhead: int("nhead")!, dimFeedforward: int("dim_feedforward")!,
            activation: Activation(name: config["activation"] as! String),
            layerNormEps: (config["layer_norm_eps"] as! NSNumber).doubleValue, batchFirst: flag("batch_first"),
            normFirst: flag("norm_first"), bias: flag("bias"))
    }

    var isEncoderStack: Bool { config["kind"] as? String == "encoder" }

    /// The module the fixture describes, with PyTorch's parameters loaded.
    func encoderModule(engine: Engine = .shared) throws -> StateDictModule {
        let layerConfig = try encoderLayerConfig()
        let module: StateDictModule
        if isEncoderStack {
            module = try TransformerEncoder(config: layerConfig, numLayers: int("num_layers")!,
                                            normEps: flag("norm") ? (config["norm_eps"] as! NSNumber).doubleValue : nil,
                                            normBias: flag("norm_bias"), engine: engine)
        } else {
            module = try TransformerEncoderLayer(config: layerConfig, engine: engine)
        }
        try module.loadSafetensors(file, prefix: "param.")
        return module
    }

    func runEncoder(_ module: StateDictModule, src: Tensor<Float>? = nil) throws -> Tensor<Float> {
        let src = try src ?? tensor("src")
        let mask = try self.mask("src_mask"), padding = try self.mask("src_key_padding_mask")
        if let layer = module as? TransformerEncoderLayer {
            return try layer(src, srcMask: mask, srcKeyPaddingMask: padding, isCausal: flag("is_causal"))
        }
        return try (module as! TransformerEncoder)(src, mask: mask, srcKeyPaddingMask: padding, isCausal: flag("is_causal"))
    }

    /// The float64 reference's output for this fixture.
    func referenceOutput() throws -> [Double] {
        let c = try encoderLayerConfig()
        let params = try Dictionary(uniqueKeysWithValues: file.names.filter { $0.hasPrefix("param.") }.map {
            (String($0.dropFirst(6)), try file.floatTensor($0))
        })
        var layers: [ReferenceEncoderLayer] = []
        var norm: (weight: [Double]?, bias: [Double]?, eps: Double)? = nil
        if isEncoderStack {
            for i in 0..<int("num_layers")! {
                let prefix = "layers.\(i)."
                let own = params.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) }
                layers.append(ReferenceEncoderLayer(config: c, parameters: Dictionary(uniqueKeysWithValues: own)))
            }
            if flag("norm") {
                norm = (params["norm.weight"].map { $0.scalars.map(Double.init) }, params["norm.bias"].map { $0.scalars.map(Double.init) },
                        (config["norm_eps"] as! NSNumber).doubleValue)
            }
        } else {
            layers = [ReferenceEncoderLayer(config: c, parameters: params)]
        }
        return referenceEncoder(layers: layers, norm: norm, src: try tensor("src"), mask: try mask("src_mask"),
                                keyPaddingMask: try mask("src_key_padding_mask"), isCausal: flag("is_causal"))
    }
}

final class EncoderFixtureTests: XCTestCase {
    func fixtures() throws -> [Fixture] {
        let all = try Fixture.all("encoder")
        XCTAssertGreaterThanOrEqual(all.count, 30, "encoder fixtures missing: run scripts/make_encoder_fixtures.py")
        return all
    }

    func check(_ fixture: Fixture, engine: Engine = .shared, file: StaticString = #filePath, line: UInt = #line) throws {
        let module = try fixture.encoderModule(engine: engine)
        let output = try fixture.runEncoder(module)
        let expected = try fixture.tensor("expected.output")
        XCTAssertEqual(output.shape, expected.shape, "\(fixture.name): shape", file: file, line: line)
        XCTAssert(output.scalars.allSatisfy(\.isFinite), "\(fixture.name): non-finite output", file: file, line: line)
        let error = relativeError(output.scalars, expected.scalars.map(Double.init))
        XCTAssertLessThan(error, 1e-5, "\(fixture.name): differs from PyTorch", file: file, line: line)
        let reference = try fixture.referenceOutput()
        XCTAssertLessThan(relativeError(output.scalars, reference), 1e-5, "\(fixture.name): differs from the float64 reference",
                          file: file, line: line)
        // PyTorch agrees with the reference too (the fixture is well conditioned).
        XCTAssertLessThan(relativeError(expected.scalars, reference), 1e-5, "\(fixture.name): PyTorch vs reference", file: file, line: line)
    }

    func testEveryEncoderFixtureMatchesPyTorch() throws {
        let all = try fixtures()
        XCTAssert(all.contains { $0.isEncoderStack } && all.contains { !$0.isEncoderStack })
        for fixture in all { try check(fixture) }
    }

    func testFixturesWithOneAndThreeThreadsGiveTheSameBits() throws {
        let one = try Engine(threads: 1), three = try Engine(threads: 3)
        for fixture in try fixtures() where fixture.name.contains("E64") || fixture.name.contains("L37") || fixture.isEncoderStack {
            let a = try fixture.runEncoder(fixture.encoderModule(engine: one))
            let b = try fixture.runEncoder(fixture.encoderModule(engine: three))
            XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), fixture.name)
        }
    }

    /// Example 3 of the seed article: its own layer class (linear1 is E -> E, relu, post-norm),
    /// which is a `TransformerEncoderLayer(d_model: 4, nhead: 2, dim_feedforward: 4)`.
    func testSeedExample3() throws {
        let fixture = try Fixture(path: Fixture.directory("encoder").appendingPathComponent("seed_example3.safetensors").path)
        let layer = try TransformerEncoderLayer(dModel: 4, nhead: 2, dimFeedforward: 4)
        try layer.loadSafetensors(fixture.file, prefix: "param.")
        let x = try fixture.tensor("src")
        XCTAssertEqual(x.shape, [2, 5, 4])
        let output = try layer(x)
        XCTAssertEqual(output.shape, [2, 5, 4])
        XCTAssertLessThan(relativeError(output.scalars, try fixture.tensor("expected.output").scalars.map(Double.init)), 1e-5)
    }
}
