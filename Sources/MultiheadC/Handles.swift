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
    static func resolve<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type, _ name: String) throws -> T {
        guard let handle else { throw ABIError.invalid("\(name) is NULL") }
        let object = lock.withLock { live[UnsafeRawPointer(handle)] }
        guard let typed = object as? T else {
            throw ABIError.invalid("\(name) is not a live \(name == "engine" ? "mh_engine" : "mh_mha") handle (destroyed, or never created)")
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

/// What an `mh_mha` handle owns: the module and C copies of its parameter names.
final class ModuleHandle {
    let module: MultiheadAttention
    let names: [UnsafeMutablePointer<CChar>]
    let shapes: [[Int]]

    init(_ module: MultiheadAttention) {
        self.module = module
        names = module.parameterShapes.map { strdup($0.name)! }
        shapes = module.parameterShapes.map(\.shape)
    }

    deinit { names.forEach { free($0) } }
}
