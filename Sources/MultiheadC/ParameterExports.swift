import CMultiheadABI
import Foundation
import Multihead

/// A handle to a module with PyTorch state_dict parameters (`mh_mha`, `mh_encoder`): the module
/// and C copies of its parameter names, which `*_parameter_info` hands out.
class ParameterHandle {
    let parameters: StateDictModule
    let names: [UnsafeMutablePointer<CChar>]
    let shapes: [[Int]]

    init(_ parameters: StateDictModule) {
        self.parameters = parameters
        let entries = parameters.parameterShapes
        names = entries.map { strdup($0.name)! }
        shapes = entries.map(\.shape)
    }

    deinit { names.forEach { free($0) } }
}

/// The parameter functions every module handle has, written once: the `@_cdecl` exports of each
/// handle type resolve their handle and call these.
enum ParameterExports {
    static func count(_ handle: ParameterHandle, _ out: UnsafeMutablePointer<Int32>?) throws {
        try required(out, "out").pointee = Int32(handle.names.count)
    }

    static func info(_ handle: ParameterHandle, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                     _ rank: UnsafeMutablePointer<Int32>?, _ shape: UnsafeMutablePointer<Int64>?) throws {
        let (name, rank, shape) = (try required(name, "name"), try required(rank, "rank"), try required(shape, "shape"))
        guard index >= 0, Int(index) < handle.names.count else {
            throw ABIError.invalid("index \(index) is out of range 0..<\(handle.names.count)")
        }
        name.pointee = UnsafePointer(handle.names[Int(index)])
        TensorDescriptor.write(handle.shapes[Int(index)], rank: rank, into: shape)
    }

    /// Copies a float32 tensor of exactly the parameter's shape (any strides) into it.
    static func set(_ handle: ParameterHandle, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<mh_tensor>?) throws {
        let module = handle.parameters
        let name = String(cString: try required(name, "name"))
        let expected = try module.parameterShape(name)
        let view = try TensorDescriptor.input(value, "value")
        guard view.shape == expected else {
            throw ABIError.shape("parameter '\(name)' has shape \(expected), got \(view.shape)")
        }
        var values = [Float](repeating: 0, count: expected.reduce(1, *))
        let source = view.base.assumingMemoryBound(to: Float.self)
        TensorDescriptor.forEachIndex(view.shape, view.strides) { linear, offset in values[linear] = source[offset] }
        try values.withUnsafeBufferPointer { try module.setParameter(name, shape: expected, values: $0) }
    }

    /// Copies the parameter into a float32 tensor of exactly its shape (any strides).
    static func get(_ handle: ParameterHandle, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<mh_tensor>?) throws {
        let name = String(cString: try required(name, "name"))
        let parameter = try handle.parameters.parameter(name)
        let view = try TensorDescriptor.output(out, "out")
        guard view.shape == parameter.shape else {
            throw ABIError.shape("parameter '\(name)' has shape \(parameter.shape), out has \(view.shape)")
        }
        TensorDescriptor.forEachIndex(view.shape, view.strides) { linear, offset in view.base[offset] = parameter.scalars[linear] }
    }

    static func loadSafetensors(_ handle: ParameterHandle, _ path: UnsafePointer<CChar>?, _ prefix: UnsafePointer<CChar>?) throws {
        let path = String(cString: try required(path, "path"))
        try handle.parameters.loadSafetensors(path: path, prefix: prefix.map { String(cString: $0) } ?? "")
    }
}
