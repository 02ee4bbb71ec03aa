import CMultiheadABI
import Foundation
import Multihead

// The `mh_bert_*` functions of include/multihead.h.

private func resolveBert(_ handle: OpaquePointer?) throws -> BertModel {
    try Handles.resolve(handle, as: BertHandle.self, "bert", "mh_bert").model
}

/// Reads an `(N, L)` token tensor of integers (or, for masks, bool and float32) into Int64s.
private func tokenValues(_ pointer: UnsafePointer<mh_tensor>, _ name: String, allowMaskTypes: Bool) throws -> (shape: [Int], values: [Int64]) {
    let t = pointer.pointee
    let allowed = allowMaskTypes ? "MH_DTYPE_I64, MH_DTYPE_I32, MH_DTYPE_BOOL or MH_DTYPE_F32" : "MH_DTYPE_I64 or MH_DTYPE_I32"
    let elementSize: Int
    switch t.dtype {
    case Int32(MH_DTYPE_I64.rawValue): elementSize = 8
    case Int32(MH_DTYPE_I32.rawValue): elementSize = 4
    case Int32(MH_DTYPE_BOOL.rawValue) where allowMaskTypes: elementSize = 1
    case Int32(MH_DTYPE_F32.rawValue) where allowMaskTypes: elementSize = 4
    default: throw ABIError.shape("\(name).dtype is \(t.dtype), expected \(allowed)")
    }
    let (shape, strides) = try TensorDescriptor.shapeAndStrides(t, name)
    guard shape.count == 2 else { throw ABIError.shape("\(name) must be 2-D (N, L), got shape \(shape)") }
    let count = shape[0] * shape[1]
    var values = [Int64](repeating: 0, count: count)
    guard count > 0, let data = t.data else { return (shape, values) }
    let raw = UnsafeRawPointer(data)
    TensorDescriptor.forEachIndex(shape, strides) { linear, offset in
        let address = raw + offset * elementSize
        switch t.dtype {
        case Int32(MH_DTYPE_I64.rawValue): values[linear] = address.loadUnaligned(as: Int64.self)
        case Int32(MH_DTYPE_I32.rawValue): values[linear] = Int64(address.loadUnaligned(as: Int32.self))
        case Int32(MH_DTYPE_BOOL.rawValue): values[linear] = address.load(as: UInt8.self) != 0 ? 1 : 0
        default: values[linear] = address.loadUnaligned(as: Float.self) != 0 ? 1 : 0
        }
    }
    return (shape, values)
}

/// The token batch of a call: ids, and the optional mask and token types of the same shape.
private func tokenBatch(_ inputIds: UnsafePointer<mh_tensor>?, _ attentionMask: UnsafePointer<mh_tensor>?,
                        _ tokenTypeIds: UnsafePointer<mh_tensor>?) throws -> TokenBatch {
    let ids = try tokenValues(try required(inputIds, "input_ids"), "input_ids", allowMaskTypes: false)
    let narrowed = try ids.values.enumerated().map { i, v -> Int32 in
        guard let n = Int32(exactly: v) else {
            throw ABIError.invalid("input_ids[\(i / max(ids.shape[1], 1))][\(i % max(ids.shape[1], 1))] = \(v) is out of range")
        }
        return n
    }
    var mask: [Bool]? = nil
    if let attentionMask {
        let m = try tokenValues(attentionMask, "attention_mask", allowMaskTypes: true)
        guard m.shape == ids.shape else { throw ABIError.shape("attention_mask has shape \(m.shape), input_ids has \(ids.shape)") }
        mask = m.values.map { $0 != 0 }
    }
    var types: [Int32]? = nil
    if let tokenTypeIds {
        let t = try tokenValues(tokenTypeIds, "token_type_ids", allowMaskTypes: false)
        guard t.shape == ids.shape else { throw ABIError.shape("token_type_ids has shape \(t.shape), input_ids has \(ids.shape)") }
        types = try t.values.enumerated().map { i, v in
            guard let n = Int32(exactly: v) else {
                throw ABIError.invalid("token_type_ids[\(i / max(t.shape[1], 1))][\(i % max(t.shape[1], 1))] = \(v) is out of range")
            }
            return n
        }
    }
    return try TokenBatch(batchSize: ids.shape[0], sequenceLength: ids.shape[1], inputIds: narrowed,
                          attentionMask: mask, tokenTypeIds: types)
}

@_cdecl("mh_bert_create")
public func mh_bert_create_impl(_ engine: OpaquePointer?, _ folder: UnsafePointer<CChar>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_bert_create") {
        let out = try required(out, "out")
        let folder = String(cString: try required(folder, "folder"))
        let engine = engine == nil ? Engine.shared : try Handles.resolve(engine, as: Engine.self, "engine", "mh_engine")
        out.pointee = Handles.register(BertHandle(try BertModel(folder: folder, engine: engine)))
    }
}

@_cdecl("mh_bert_destroy")
public func mh_bert_destroy_impl(_ bert: OpaquePointer?) { Handles.destroy(bert) }

@_cdecl("mh_bert_get_config")
public func mh_bert_get_config_impl(_ bert: OpaquePointer?, _ out: UnsafeMutablePointer<mh_bert_config>?) -> mh_status {
    guarded("mh_bert_get_config") {
        let model = try resolveBert(bert)
        let out = try required(out, "out")
        try checkStructSize(out.pointee.struct_size, mh_bert_config.self, "out")
        let c = model.config
        out.pointee = mh_bert_config(
            struct_size: UInt32(MemoryLayout<mh_bert_config>.size), hidden_size: Int64(c.hiddenSize),
            num_hidden_layers: Int64(c.numHiddenLayers), num_attention_heads: Int64(c.numAttentionHeads),
            intermediate_size: Int64(c.intermediateSize), max_position_embeddings: Int64(c.maxPositionEmbeddings),
            vocab_size: Int64(c.vocabSize), type_vocab_size: Int64(c.typeVocabSize), pad_token_id: Int64(c.padTokenId),
            layer_norm_eps: c.layerNormEps)
    }
}

@_cdecl("mh_bert_hidden_states")
public func mh_bert_hidden_states_impl(_ bert: OpaquePointer?, _ inputIds: UnsafePointer<mh_tensor>?,
                                       _ attentionMask: UnsafePointer<mh_tensor>?, _ tokenTypeIds: UnsafePointer<mh_tensor>?,
                                       _ output: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_bert_hidden_states") {
        let model = try resolveBert(bert)
        let batch = try tokenBatch(inputIds, attentionMask, tokenTypeIds)
        let out = try TensorDescriptor.output(output, "output")
        try model.hiddenStates(batch, output: out)
    }
}

@_cdecl("mh_bert_embed")
public func mh_bert_embed_impl(_ bert: OpaquePointer?, _ inputIds: UnsafePointer<mh_tensor>?,
                               _ attentionMask: UnsafePointer<mh_tensor>?, _ tokenTypeIds: UnsafePointer<mh_tensor>?,
                               _ normalize: Int32, _ output: UnsafeMutablePointer<mh_tensor>?) -> mh_status {
    guarded("mh_bert_embed") {
        let model = try resolveBert(bert)
        let batch = try tokenBatch(inputIds, attentionMask, tokenTypeIds)
        let out = try TensorDescriptor.output(output, "output")
        try model.sentenceEmbeddings(batch, normalize: normalize != 0, output: out)
    }
}
