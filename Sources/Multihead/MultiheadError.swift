/// Everything that can go wrong in Multihead, as a thrown error with a message that names the
/// argument and the shapes involved. The C layer maps each case to an `mh_status`.
public enum MultiheadError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A bad value: a non-positive size, an unknown option, a closed handle.
    case invalidArgument(String)
    /// A tensor whose rank, shape or dtype does not fit.
    case shape(String)
    /// A file that cannot be opened or read.
    case io(String)
    /// A file whose contents are malformed.
    case format(String)
    /// Something valid that this build does not do.
    case unsupported(String)
    /// An allocation that failed or a size that overflows.
    case outOfMemory(String)

    public var message: String {
        switch self {
        case .invalidArgument(let m), .shape(let m), .io(let m), .format(let m), .unsupported(let m),
             .outOfMemory(let m):
            return m
        }
    }

    public var description: String { message }
}

/// `a * b * ...`, or an error naming `what` when the product overflows `Int`.
func checkedProduct(_ dims: [Int], _ what: @autoclosure () -> String) throws -> Int {
    var product = 1
    for d in dims {
        let (p, overflow) = product.multipliedReportingOverflow(by: d)
        if overflow { throw MultiheadError.outOfMemory("\(what()): size of shape \(dims) overflows") }
        product = p
    }
    return product
}
