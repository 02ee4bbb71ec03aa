import CMultiheadABI
import Foundation
import Multihead

/// Live handles, so that a destroyed (or never created) handle is rejected instead of crashing.
enum Handles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live: [UnsafeRawPointer: AnyObject] = [:]

    static func register(_ object: AnyObject) -> OpaquePointer {
        let pointer = Unmanaged.passRetained(object).toOpaque()
        lock.withLock { live[UnsafeRawPointer(pointer)] = object }
        return OpaquePointer(pointer)
    }

    /// The object behind `handle`, if it is live and of type `T`.
    /// - Parameters:
    ///   - name: the argument's name in the C signature, for the message.
    ///   - cType: the handle's C type (`mh_engine`, `mh_mha`, ...), for the message.
    static func resolve<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type, _ name: String, _ cType: String) throws -> T {
        guard let handle else { throw ABIError.invalid("\(name) is NULL") }
        let object = lock.withLock { live[UnsafeRawPointer(handle)] }
        guard let typed = object as? T else {
            throw ABIError.invalid("\(name) is not a live \(cType) handle (destroyed, or never created)")
        }
        return typed
    }

    /// Forgets and releases `handle`; unknown handles are ignored.
    static func destroy(_ handle: OpaquePointer?) {
        guard let handle else { return }
        let removed = lock.withLock { live.removeValue(forKey: UnsafeRawPointer(handle)) }
        if removed != nil { Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(handle)).release() }
    }
}

/// What an `mh_mha` handle owns: the module (and, through `ParameterHandle`, its parameter names).
final class ModuleHandle: ParameterHandle {
    let module: MultiheadAttention

    init(_ module: MultiheadAttention) {
        self.module = module
        super.init(module)
    }
}
