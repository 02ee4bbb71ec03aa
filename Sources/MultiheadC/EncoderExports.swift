import CMultiheadABI
import Foundation
import Multihead

// The `mh_encoder_*` and `mh_layer_norm_*` functions of include/multihead.h: checks and
// translation only; semantics live in `Multihead` (TransformerEncoderLayer, TransformerEncoder,
// LayerNorm).

private func resolveEncoder(_ handle: OpaquePointer?, _ name: String = "encoder") throws -> EncoderHandle {
    try Handles.resolve(handle, as: EncoderHandle.self, name, "mh_encoder")
}

private func engineArgument(_ engine: OpaquePointer?) throws -> Engine {
    engine == nil ? Engine.shared : try Handles.resolve(engine, as: Engine.self, "engine", "mh_engine")
}

@_cdecl("mh_encoder_layer_config_init")
public func mh_encoder_layer_config_init_impl(_ config: UnsafeMutablePointer<mh_encoder_layer_config>?) {
    guard let config else { return }
    var c = mh_encoder_layer_config()
    c.struct_size = UInt32(MemoryLayout<mh_encoder_layer_config>.size)
    c.dim_feedforward = 2048
    c.dropout = 0.1
    c.activation = Int32(MH_ACTIVATION_RELU.rawValue)
    c.layer_norm_eps = 1e-5
    c.bias = 1
    config.pointee = c
}

@_cdecl("mh_encoder_layer_create")
public func mh_encoder_layer_create_impl(_ engine: OpaquePointer?, _ config: UnsafePointer<mh_encoder_layer_config>?,
                                         _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_encoder_layer_create") {
        let out = try required(out, "out")
        let c = try required(config, "config").pointee
        try checkStructSize(c.struct_size, mh_encoder_layer_config.self, "config")
        let engine = try engineArgument(engine)
        let activation: Activation
        switch c.activation {
        case Int32(MH_ACTIVATION_RELU.rawValue): activation = .relu
        case Int32(MH_ACTIVATION_GELU.rawValue): activation = .gelu
        default:
            throw ABIError.invalid("config->activation is \(c.activation), expected MH_ACTIVATION_RELU (0) or MH_ACTIVATION_GELU (1)")
        }
        for (name, value) in [("d_model", c.d_model), ("nhead", c.nhead), ("dim_feedforward", c.dim_feedforward)] where value <= 0 || value > Int64(Int32.max) {
            throw ABIError.invalid("config->\(name) is \(value), must be in 1...\(Int32.max)")
        }
        let layer = try TransformerEncoderLayer(
            dModel: Int(c.d_model), nhead: Int(c.nhead), dimFeedforward: Int(c.dim_feedforward), dropout: c.dropout,
            activation: activation, layerNormEps: c.layer_norm_eps, batchFirst: c.batch_first != 0, normFirst: c.norm_first != 0,
            bias: c.bias != 0, seed: c.seed, engine: engine)
        out.pointee = Handles.register(EncoderHandle(layer, kind: .layer))
    }
}

@_cdecl("mh_layer_norm_config_init")
public func mh_layer_norm_config_init_impl(_ config: UnsafeMutablePointer<mh_layer_norm_config>?) {
    guard let config else { return }
    config.pointee = mh_layer_norm_config(struct_size: UInt32(MemoryLayout<mh_layer_norm_config>.size), normalized_shape: 0,
                                          eps: 1e-5, elementwise_affine: 1, bias: 1)
}

@_cdecl("mh_layer_norm_create")
public func mh_layer_norm_create_impl(_ engine: OpaquePointer?, _ config: UnsafePointer<mh_layer_norm_config>?,
                                      _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_layer_norm_create") {
        let out = try required(out, "out")
        let c = try required(config, "config").pointee
        try checkStructSize(c.struct_size, mh_layer_norm_config.self, "config")
        let engine = try engineArgument(engine)
        guard c.normalized_shape > 0, c.normalized_shape <= Int64(Int32.max) else {
            throw ABIError.invalid("config->normalized_shape is \(c.normalized_shape), must be in 1...\(Int32.max)")
        }
        let norm = try LayerNorm(Int(c.normalized_shape), eps: c.eps, elementwiseAffine: c.elementwise_affine != 0,
                                 bias: c.bias != 0, engine: engine)
        out.pointee = Handles.register(EncoderHandle(norm, kind: .layerNorm))
    }
}

@_cdecl("mh_encoder_create")
public func mh_encoder_create_impl(_ layer: OpaquePointer?, _ numLayers: Int32, _ norm: OpaquePointer?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_encoder_create") {
        let out = try required(out, "out")
        let layerHandle = try resolveEncoder(layer, "layer")
        guard layerHandle.kind == .layer, let layer = layerHandle.module as? TransformerEncoderLayer else {
            throw ABIError.invalid("layer must be a TransformerEncoderLayer (mh_encoder_layer_create), got \(layerHandle.kindName)")
        }
        guard numLayers >= 1 else { throw ABIError.invalid("num_layers is \(numLayers), must be >= 1") }
        var copy: LayerNorm? = nil
        if norm != nil {
            let normHandle = try resolveEncoder(norm, "norm")
            guard normHandle.kind == .layerNorm, let given = normHandle.module as? LayerNorm else {
                throw ABIError.invalid("norm must be a LayerNorm (mh_layer_norm_create) or NULL, got \(normHandle.kindName)")
            }
            copy = try LayerNorm(given.normalizedShape, eps: given.eps, elementwiseAffine: given.elementwiseAffine,
                                 bias: given.bias, engine: layer.engine)
            try copy!.loadStateDict(given.stateDict())
        }
        let encoder = try TransformerEncoder(encoderLayer: layer, numLayers: Int(numLayers), norm: copy)
        out.pointee = Handles.register(EncoderHandle(encoder, kind: .encoder))
    }
}

@_cdecl("mh_encoder_destroy")
public func mh_encoder_destroy_impl(_ encoder: OpaquePointer?) { Handles.destroy(encoder) }

@_cdecl("mh_encoder_parameter_count")
public func mh_encoder_parameter_count_impl(_ encoder: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> mh_status {
    guarded("mh_encoder_parameter_count") {
        try ParameterExports.count(try resolveEncoder(encoder), out)
    }
}

@_cdecl("mh_encoder_parameter_info")
public func mh_encoder_parameter_info_impl(_ encoder: OpaquePointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                           _ rank: UnsafeMutablePointer<Int32>?, _ shape: UnsafeMutablePointer<Int64>?) -> mh_status {
    guarded("mh_encoder_parameter_info") {
        try ParameterExports.info(try resolveEncoder(encoder), index, name, rank, shape)
    }
}

@_cdecl("mh_encoder_set_parameter")
public func mh_encoder_set_parameter_impl(_ encoder: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                          _ value: UnsafePointer<mh_tensor>?) -> mh_status {
    guarded("mh_encoder_set_parameter") {
        try ParameterExports.set(try resolveEncoder(encoder), name, value)
    }
}

@_cdecl("mh_encoder_get_parameter")
public func mh_encoder_get_parameter_impl(_ encoder: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                          _ out: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_encoder_get_parameter") {
        try ParameterExports.get(try resolveEncoder(encoder), name, out)
    }
}

@_cdecl("mh_encoder_load_safetensors")
public func mh_encoder_load_safetensors_impl(_ encoder: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                             _ prefix: UnsafePointer<CChar>?) -> mh_status {
    guarded("mh_encoder_load_safetensors") {
        try ParameterExports.loadSafetensors(try resolveEncoder(encoder), path, prefix)
    }
}

@_cdecl("mh_encoder_forward")
public func mh_encoder_forward_impl(_ encoder: OpaquePointer?, _ src: UnsafePointer<mh_tensor>?, _ mask: UnsafePointer<mh_tensor>?,
                                    _ srcKeyPaddingMask: UnsafePointer<mh_tensor>?, _ isCausal: Int32,
                                    _ output: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_encoder_forward") {
        let handle = try resolveEncoder(encoder)
        let source = try TensorDescriptor.input(src, "src")
        let maskView = try TensorDescriptor.optionalInput(mask, "mask")
        let padding = try TensorDescriptor.optionalInput(srcKeyPaddingMask, "src_key_padding_mask")
        let out = try TensorDescriptor.output(output, "output")
        switch handle.module {
        case let layer as TransformerEncoderLayer:
            try layer.forward(src: source, srcMask: maskView, srcKeyPaddingMask: padding, isCausal: isCausal != 0, output: out)
        case let stack as TransformerEncoder:
            try stack.forward(src: source, mask: maskView, srcKeyPaddingMask: padding, isCausal: isCausal != 0, output: out)
        case let norm as LayerNorm:
            guard mask == nil, srcKeyPaddingMask == nil else {
                throw ABIError.invalid("a LayerNorm takes no mask or src_key_padding_mask (pass NULL)")
            }
            try norm.forward(input: source, output: out)
        default:
            throw ABIError(status: MH_ERR_INTERNAL, message: "unknown encoder module \(type(of: handle.module))")
        }
    }
}
