import CMultiheadABI
import Foundation
import Multihead

/// The thread-local text behind `mh_last_error_message`, kept as a malloc'd C string so the
/// pointer handed out stays valid until the next call on the same thread.
enum ErrorState {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static var message: UnsafePointer<CChar> {
        if let p = pthread_getspecific(key) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
        return UnsafePointer(empty)
    }

    private static let empty: UnsafeMutablePointer<CChar> = strdup("")!

    static func set(_ text: String) {
        free(pthread_getspecific(key))
        pthread_setspecific(key, strdup(text))
    }

    static func clear() {
        free(pthread_getspecific(key))
        pthread_setspecific(key, nil)
    }
}

/// An error raised by the C layer's own checks, before anything reaches the API layer.
struct ABIError: Error {
    var status: mh_status
    var message: String

    static func invalid(_ message: String) -> ABIError { ABIError(status: MH_ERR_INVALID_ARGUMENT, message: message) }
    static func shape(_ message: String) -> ABIError { ABIError(status: MH_ERR_SHAPE, message: message) }
}

/// Runs `body`, turning every thrown error into a status and the thread's error message.
@inline(__always)
func guarded(_ function: StaticString, _ body: () throws -> Void) -> mh_status {
    do {
        try body()
        return MH_OK
    } catch let error as ABIError {
        ErrorState.set("\(function): \(error.message)")
        return error.status
    } catch let error as MultiheadError {
        ErrorState.set("\(function): \(error.message)")
        switch error {
        case .invalidArgument: return MH_ERR_INVALID_ARGUMENT
        case .shape: return MH_ERR_SHAPE
        case .io: return MH_ERR_IO
        case .format: return MH_ERR_FORMAT
        case .unsupported: return MH_ERR_UNSUPPORTED
        case .outOfMemory: return MH_ERR_OUT_OF_MEMORY
        }
    } catch {
        ErrorState.set("\(function): internal error: \(error)")
        return MH_ERR_INTERNAL
    }
}

/// A required pointer argument, or an error naming it.
@inline(__always)
func required<T>(_ pointer: T?, _ name: String) throws -> T {
    guard let pointer else { throw ABIError.invalid("\(name) is NULL") }
    return pointer
}
