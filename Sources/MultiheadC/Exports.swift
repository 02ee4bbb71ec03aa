import CMultiheadABI
import Foundation
import Multihead

// The `mh_*` functions of include/multihead.h. This layer only checks and translates: every
// pointer, struct_size, rank, dtype and size is checked before the API layer sees it, and every
// error becomes a status plus the thread's error message. Semantics live in `Multihead`.

/// A `struct_size` must be exactly the size this library was built with.
func checkStructSize<T>(_ size: UInt32, _ type: T.Type, _ name: String) throws {
    guard Int(size) == MemoryLayout<T>.size else {
        throw ABIError.invalid("\(name)->struct_size is \(size), expected \(MemoryLayout<T>.size) (initialise it with the matching *_init function)")
    }
}

@_cdecl("mh_status_string")
public func mh_status_string_impl(_ status: mh_status) -> UnsafePointer<CChar> {
    let text: StaticString
    switch status {
    case MH_OK: text = "MH_OK"
    case MH_ERR_INVALID_ARGUMENT: text = "MH_ERR_INVALID_ARGUMENT"
    case MH_ERR_SHAPE: text = "MH_ERR_SHAPE"
    case MH_ERR_OUT_OF_MEMORY: text = "MH_ERR_OUT_OF_MEMORY"
    case MH_ERR_IO: text = "MH_ERR_IO"
    case MH_ERR_FORMAT: text = "MH_ERR_FORMAT"
    case MH_ERR_UNSUPPORTED: text = "MH_ERR_UNSUPPORTED"
    case MH_ERR_INTERNAL: text = "MH_ERR_INTERNAL"
    default: text = "MH_ERR_UNKNOWN_STATUS"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("mh_last_error_message")
public func mh_last_error_message_impl() -> UnsafePointer<CChar> { ErrorState.message }

@_cdecl("mh_version_number")
public func mh_version_number_impl() -> UInt32 { UInt32(MH_VERSION_MAJOR * 10000 + MH_VERSION_MINOR * 100 + MH_VERSION_PATCH) }

@_cdecl("mh_tensor_init_contiguous")
public func mh_tensor_init_contiguous_impl(_ t: UnsafeMutablePointer<mh_tensor>?, _ data: UnsafeMutableRawPointer?,
                                           _ dtype: Int32, _ rank: Int32, _ shape: UnsafePointer<Int64>?) -> mh_status {
    guarded("mh_tensor_init_contiguous") {
        let t = try required(t, "t")
        guard rank >= 0, rank <= MH_MAX_RANK else { throw ABIError.shape("rank is \(rank), must be 0...\(MH_MAX_RANK)") }
        let shape = rank == 0 ? [] : Array(UnsafeBufferPointer(start: try required(shape, "shape"), count: Int(rank)))
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ABIError.shape("shape \(shape) has a negative size") }
        var descriptor = mh_tensor()
        descriptor.data = data
        descriptor.dtype = dtype
        descriptor.rank = rank
        withUnsafeMutableBytes(of: &descriptor.shape) { raw in
            let out = raw.bindMemory(to: Int64.self)
            for (i, d) in shape.enumerated() { out[i] = d }
        }
        withUnsafeMutableBytes(of: &descriptor.strides) { raw in
            let out = raw.bindMemory(to: Int64.self)
            var step: Int64 = 1
            for i in stride(from: shape.count - 1, through: 0, by: -1) {
                out[i] = step
                step = step &* max(shape[i], 1)
            }
        }
        t.pointee = descriptor
    }
}

// MARK: Module

@_cdecl("mh_mha_config_init")
public func mh_mha_config_init_impl(_ config: UnsafeMutablePointer<mh_mha_config>?) {
    guard let config else { return }
    config.pointee = mh_mha_config(
        struct_size: UInt32(MemoryLayout<mh_mha_config>.size), embed_dim: 0, num_heads: 0, dropout: 0, bias: 1,
        add_bias_kv: 0, add_zero_attn: 0, kdim: 0, vdim: 0, qdim: 0, batch_first: 0, seed: 0)
}

@_cdecl("mh_mha_create")
public func mh_mha_create_impl(_ engine: OpaquePointer?, _ config: UnsafePointer<mh_mha_config>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_mha_create") {
        let out = try required(out, "out")
        let c = try required(config, "config").pointee
        try checkStructSize(c.struct_size, mh_mha_config.self, "config")
        let engine = engine == nil ? Engine.shared : try Handles.resolve(engine, as: Engine.self, "engine", "mh_engine")
        for (name, value) in [("embed_dim", c.embed_dim), ("num_heads", c.num_heads), ("kdim", c.kdim), ("vdim", c.vdim), ("qdim", c.qdim)] {
            guard value >= 0 || name == "embed_dim" || name == "num_heads" else {
                throw ABIError.invalid("config->\(name) is \(value), must be >= 0 (0 = embed_dim)")
            }
        }
        func optional(_ v: Int64) -> Int? { v == 0 ? nil : Int(v) }
        let module = try MultiheadAttention(
            embedDim: Int(c.embed_dim), numHeads: Int(c.num_heads), dropout: c.dropout, bias: c.bias != 0,
            addBiasKV: c.add_bias_kv != 0, addZeroAttn: c.add_zero_attn != 0, kdim: optional(c.kdim), vdim: optional(c.vdim),
            qdim: optional(c.qdim), batchFirst: c.batch_first != 0, seed: c.seed, engine: engine)
        out.pointee = Handles.register(ModuleHandle(module))
    }
}

@_cdecl("mh_mha_destroy")
public func mh_mha_destroy_impl(_ mha: OpaquePointer?) { Handles.destroy(mha) }

@_cdecl("mh_mha_parameter_count")
public func mh_mha_parameter_count_impl(_ mha: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> mh_status {
    guarded("mh_mha_parameter_count") {
        try ParameterExports.count(try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha"), out)
    }
}

@_cdecl("mh_mha_parameter_info")
public func mh_mha_parameter_info_impl(_ mha: OpaquePointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                       _ rank: UnsafeMutablePointer<Int32>?, _ shape: UnsafeMutablePointer<Int64>?) -> mh_status {
    guarded("mh_mha_parameter_info") {
        try ParameterExports.info(try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha"), index, name, rank, shape)
    }
}

@_cdecl("mh_mha_set_parameter")
public func mh_mha_set_parameter_impl(_ mha: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<mh_tensor>?) -> mh_status {
    guarded("mh_mha_set_parameter") {
        try ParameterExports.set(try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha"), name, value)
    }
}

@_cdecl("mh_mha_get_parameter")
public func mh_mha_get_parameter_impl(_ mha: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_mha_get_parameter") {
        try ParameterExports.get(try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha"), name, out)
    }
}

@_cdecl("mh_mha_load_safetensors")
public func mh_mha_load_safetensors_impl(_ mha: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ prefix: UnsafePointer<CChar>?) -> mh_status {
    guarded("mh_mha_load_safetensors") {
        try ParameterExports.loadSafetensors(try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha"), path, prefix)
    }
}

// MARK: Forward

@_cdecl("mh_forward_options_init")
public func mh_forward_options_init_impl(_ options: UnsafeMutablePointer<mh_forward_options>?) {
    guard let options else { return }
    options.pointee = mh_forward_options(struct_size: UInt32(MemoryLayout<mh_forward_options>.size), need_weights: 1,
                                         average_attn_weights: 1, is_causal: 0)
}

private func forwardOptions(_ options: UnsafePointer<mh_forward_options>?) throws -> ForwardOptions {
    guard let options else { return ForwardOptions() }
    let o = options.pointee
    try checkStructSize(o.struct_size, mh_forward_options.self, "options")
    return ForwardOptions(needWeights: o.need_weights != 0, averageAttnWeights: o.average_attn_weights != 0, isCausal: o.is_causal != 0)
}

@_cdecl("mh_mha_output_shapes")
public func mh_mha_output_shapes_impl(_ mha: OpaquePointer?, _ query: UnsafePointer<mh_tensor>?, _ key: UnsafePointer<mh_tensor>?,
                                      _ value: UnsafePointer<mh_tensor>?, _ options: UnsafePointer<mh_forward_options>?,
                                      _ outputRank: UnsafeMutablePointer<Int32>?, _ outputShape: UnsafeMutablePointer<Int64>?,
                                      _ weightsRank: UnsafeMutablePointer<Int32>?, _ weightsShape: UnsafeMutablePointer<Int64>?) -> mh_status {
    guarded("mh_mha_output_shapes") {
        let module = try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha").module
        var shapes: [[Int]] = []
        for (pointer, name) in [(query, "query"), (key, "key"), (value, "value")] {
            let t = try required(pointer, name).pointee
            _ = try TensorDescriptor.element(t, name, allowBool: false)
            shapes.append(try TensorDescriptor.shape(t, name))
        }
        let (outRank, outShape, wRank, wShape) = (try required(outputRank, "output_rank"), try required(outputShape, "output_shape"),
                                                  try required(weightsRank, "weights_rank"), try required(weightsShape, "weights_shape"))
        let result = try module.outputShapes(query: shapes[0], key: shapes[1], value: shapes[2], options: try forwardOptions(options))
        TensorDescriptor.write(result.output, rank: outRank, into: outShape)
        TensorDescriptor.write(result.weights ?? [], rank: wRank, into: wShape)
    }
}

@_cdecl("mh_mha_forward")
public func mh_mha_forward_impl(_ mha: OpaquePointer?, _ query: UnsafePointer<mh_tensor>?, _ key: UnsafePointer<mh_tensor>?,
                                _ value: UnsafePointer<mh_tensor>?, _ keyPaddingMask: UnsafePointer<mh_tensor>?,
                                _ attnMask: UnsafePointer<mh_tensor>?, _ options: UnsafePointer<mh_forward_options>?,
                                _ output: UnsafeMutablePointer<mh_tensor>?, _ weights: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_mha_forward") {
        let module = try Handles.resolve(mha, as: ModuleHandle.self, "mha", "mh_mha").module
        let options = try forwardOptions(options)
        let q = try TensorDescriptor.input(query, "query")
        let k = try TensorDescriptor.input(key, "key")
        let v = try TensorDescriptor.input(value, "value")
        let kpm = try TensorDescriptor.optionalInput(keyPaddingMask, "key_padding_mask")
        let am = try TensorDescriptor.optionalInput(attnMask, "attn_mask")
        let out = try TensorDescriptor.output(output, "output")
        var w: MutableTensorView? = nil
        if options.needWeights {
            guard weights != nil else { throw ABIError.invalid("weights is NULL but options->need_weights is 1") }
            w = try TensorDescriptor.output(weights, "weights")
        }
        try module.forward(query: q, key: k, value: v, keyPaddingMask: kpm, attnMask: am, options: options, output: out, weights: w)
    }
}
