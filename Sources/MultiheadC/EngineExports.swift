import CMultiheadABI
import Foundation
import Multihead
import MultiheadTopology

// The engine functions of include/multihead.h: options, create/destroy, thread count, and the
// JSON description of the engine and its plan for a shape.

/// Size of `mh_engine_options` in its first layout (`struct_size`, `num_threads`), still accepted.
private let engineOptionsV1Size = 8
/// Size of the second layout (up to `topology_xml`), still accepted.
private let engineOptionsV2Size = MemoryLayout<mh_engine_options>.offset(of: \mh_engine_options.scratch_limit_bytes)!

/// The sizes of the layouts `mh_engine_options` has had, oldest first.
private let engineOptionsSizes = [engineOptionsV1Size, engineOptionsV2Size, MemoryLayout<mh_engine_options>.size]

@_cdecl("mh_engine_options_init_sized")
public func mh_engine_options_init_sized_impl(_ options: UnsafeMutablePointer<mh_engine_options>?, _ size: Int) {
    guard let options, engineOptionsSizes.contains(size) else { return }
    var defaults = mh_engine_options(
        struct_size: UInt32(size), num_threads: 0, policy: Int32(MH_POLICY_DEFAULT.rawValue),
        executor: Int32(MH_EXECUTOR_DEFAULT.rawValue), mirror_weights: -1, cpuset: nil, topology_synthetic: nil,
        topology_xml: nil, scratch_limit_bytes: 0)
    // Only the caller's layout: a program built against an older header has a smaller struct.
    withUnsafeBytes(of: &defaults) { UnsafeMutableRawPointer(options).copyMemory(from: $0.baseAddress!, byteCount: size) }
}

/// What programs built against the header before `scratch_limit_bytes` call.
@_cdecl("mh_engine_options_init")
public func mh_engine_options_init_impl(_ options: UnsafeMutablePointer<mh_engine_options>?) {
    mh_engine_options_init_sized_impl(options, engineOptionsV2Size)
}

/// Translates C engine options, checking every field.
private func engineOptions(_ pointer: UnsafePointer<mh_engine_options>?) throws -> Engine.Options {
    var options = Engine.Options()
    guard let pointer else { return options }
    let size = Int(UnsafeRawPointer(pointer).load(as: UInt32.self))
    guard engineOptionsSizes.contains(size) else {
        throw ABIError.invalid("options->struct_size is \(size), expected \(MemoryLayout<mh_engine_options>.size) "
            + "(initialise it with mh_engine_options_init)")
    }
    // Read only the caller's layout; later fields keep their zero (default) values.
    var o = mh_engine_options()
    withUnsafeMutableBytes(of: &o) { $0.baseAddress!.copyMemory(from: UnsafeRawPointer(pointer), byteCount: size) }
    options.threads = Int(o.num_threads)
    guard size > engineOptionsV1Size else { return options }   // the first layout: no further fields
    let cpuset = o.cpuset.map { String(cString: $0) }
    switch o.policy {
    case Int32(MH_POLICY_DEFAULT.rawValue): options.policy = nil
    case Int32(MH_POLICY_DISTRIBUTE.rawValue): options.policy = .distribute
    case Int32(MH_POLICY_ISOLATE.rawValue): options.policy = .isolate
    case Int32(MH_POLICY_NONE.rawValue): options.policy = Engine.Policy.none
    case Int32(MH_POLICY_CPUSET.rawValue):
        guard let cpuset else { throw ABIError.invalid("options->policy is MH_POLICY_CPUSET but options->cpuset is NULL") }
        options.policy = .cpuset(try parseCPUList(cpuset))
    default:
        throw ABIError.invalid("options->policy is \(o.policy), not an mh_policy (0...4)")
    }
    if cpuset != nil && o.policy != Int32(MH_POLICY_CPUSET.rawValue) {
        throw ABIError.invalid("options->cpuset is set but options->policy is not MH_POLICY_CPUSET")
    }
    switch o.executor {
    case Int32(MH_EXECUTOR_DEFAULT.rawValue): options.executor = .default
    case Int32(MH_EXECUTOR_PINNED.rawValue): options.executor = .pinned
    case Int32(MH_EXECUTOR_DISPATCH.rawValue): options.executor = .dispatch
    case Int32(MH_EXECUTOR_PLAIN.rawValue): options.executor = .plain
    default: throw ABIError.invalid("options->executor is \(o.executor), not an mh_executor (0...3)")
    }
    switch o.mirror_weights {
    case -1: options.mirrorWeights = nil
    case 0, 1: options.mirrorWeights = o.mirror_weights == 1
    default: throw ABIError.invalid("options->mirror_weights is \(o.mirror_weights), expected -1 (auto), 0 or 1")
    }
    if o.topology_synthetic != nil && o.topology_xml != nil {
        throw ABIError.invalid("options->topology_synthetic and options->topology_xml are both set; set at most one")
    }
    do {
        if let text = o.topology_synthetic { options.topology = try Topology.load(synthetic: String(cString: text)) }
        if let path = o.topology_xml { options.topology = try Topology.load(xmlFile: String(cString: path)) }
    } catch let error as TopologyError {
        switch error {
        case .xmlFileUnreadable: throw MultiheadError.io("\(error)")
        case .invalidSyntheticDescription, .invalidXMLFile: throw MultiheadError.format("\(error)")
        default: throw MultiheadError.invalidArgument("\(error)")
        }
    }
    guard size > engineOptionsV2Size else { return options }   // the second layout: no scratch limit
    switch o.scratch_limit_bytes {
    case 0: options.scratchLimit = nil
    case -1: options.scratchLimit = Int.max
    case 1...: options.scratchLimit = Int(o.scratch_limit_bytes)
    default:
        throw ABIError.invalid("options->scratch_limit_bytes is \(o.scratch_limit_bytes), expected 0 (default), -1 (never group) or a positive byte count")
    }
    return options
}

private func parseCPUList(_ text: String) throws -> CPUSet {
    do {
        return try CPUSet(parsing: text)
    } catch {
        throw ABIError.invalid("options->cpuset: \(error)")
    }
}

@_cdecl("mh_engine_create")
public func mh_engine_create_impl(_ options: UnsafePointer<mh_engine_options>?,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mh_status {
    guarded("mh_engine_create") {
        let out = try required(out, "out")
        out.pointee = Handles.register(try Engine(options: try engineOptions(options)))
    }
}

@_cdecl("mh_engine_destroy")
public func mh_engine_destroy_impl(_ engine: OpaquePointer?) { Handles.destroy(engine) }

@_cdecl("mh_engine_num_threads")
public func mh_engine_num_threads_impl(_ engine: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> mh_status {
    guarded("mh_engine_num_threads") {
        let engine = try Handles.resolve(engine, as: Engine.self, "engine", "mh_engine")
        try required(out, "out").pointee = Int32(clamping: engine.threadCount)
    }
}

@_cdecl("mh_plan_shape_init")
public func mh_plan_shape_init_impl(_ shape: UnsafeMutablePointer<mh_plan_shape>?) {
    guard let shape else { return }
    shape.pointee = mh_plan_shape(struct_size: UInt32(MemoryLayout<mh_plan_shape>.size), batch: 0, num_heads: 0,
                                  seq_len: 0, source_len: 0, embed_dim: 0, need_weights: 0)
}

@_cdecl("mh_engine_describe")
public func mh_engine_describe_impl(_ engine: OpaquePointer?, _ shape: UnsafePointer<mh_plan_shape>?,
                                    _ json: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> mh_status {
    guarded("mh_engine_describe") {
        let engine = try Handles.resolve(engine, as: Engine.self, "engine", "mh_engine")
        let json = try required(json, "json")
        var plan: PlanShape?
        if let shape {
            let s = shape.pointee
            try checkStructSize(s.struct_size, mh_plan_shape.self, "shape")
            func size(_ value: Int64, _ name: String) throws -> Int {
                guard let converted = Int(exactly: value) else { throw ABIError.invalid("shape->\(name) is out of range") }
                return converted
            }
            plan = try PlanShape(batch: size(s.batch, "batch"), heads: size(s.num_heads, "num_heads"),
                                 seqLen: size(s.seq_len, "seq_len"),
                                 sourceLen: s.source_len == 0 ? nil : size(s.source_len, "source_len"),
                                 embedDim: s.embed_dim == 0 ? nil : size(s.embed_dim, "embed_dim"),
                                 needWeights: s.need_weights != 0)
        }
        json.pointee = try DescriptionText.store(engine.describeJSON(shape: plan))
    }
}

/// The thread-local text behind `mh_engine_describe`'s result, freed at the next call on the
/// same thread or when the thread ends.
private enum DescriptionText {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func store(_ text: String) throws -> UnsafePointer<CChar> {
        free(pthread_getspecific(key))
        pthread_setspecific(key, nil)
        guard let copy = strdup(text) else { throw MultiheadError.outOfMemory("no memory for the description") }
        pthread_setspecific(key, copy)
        return UnsafePointer(copy)
    }
}
