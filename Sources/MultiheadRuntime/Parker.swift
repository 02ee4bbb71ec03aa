import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where one thread sleeps when spinning has lasted long enough (a futex, through a pthread
/// condition variable, since Swift cannot call the variadic `syscall`).
///
/// The protocol is Dekker's: the sleeper publishes `sleeping` and then re-checks its condition;
/// the waker publishes its state change and then reads `sleeping`. Both sides use sequentially
/// consistent operations, so at least one of them sees the other, and no wake-up is lost. A waker
/// that finds nobody asleep makes no system call, which is what keeps a hot fork/join cheap.
final class Parker: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let sleeping = Atomic<Bool>(false)

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Blocks until `ready()` is true. `ready` must read, with sequentially consistent ordering,
    /// state that wakers change before calling `unpark()`.
    func park(until ready: () -> Bool) {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(mutex)
        while !ready() { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
        sleeping.store(false, ordering: .relaxed)
    }

    /// Wakes the sleeper, if there is one. Call it after changing the state `park` waits on.
    func unpark() {
        guard sleeping.load(ordering: .sequentiallyConsistent) else { return }
        pthread_mutex_lock(mutex)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// Busy-waiting with a deadline.
enum Spin {
    /// How long a thread spins before it sleeps: long enough to bridge the gap between the
    /// phases of one forward call, short enough not to burn a core between calls.
    static let defaultNanoseconds: UInt64 = 50_000

    /// Polls `ready` until it is true or `nanoseconds` have passed.
    ///
    /// - Returns: true when `ready()` became true, false on timeout.
    @inline(__always)
    static func wait(nanoseconds: UInt64, until ready: () -> Bool) -> Bool {
        if ready() { return true }
        guard nanoseconds > 0 else { return false }
        let deadline = DispatchTime.now().uptimeNanoseconds &+ nanoseconds
        while true {
            // Reading the clock costs more than a poll: look at it every 64 polls.
            for _ in 0..<64 where ready() { return true }
            if DispatchTime.now().uptimeNanoseconds >= deadline { return ready() }
        }
    }
}
