#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a topology could not be loaded, parsed or used.
///
/// Every case that wraps a failed hwloc or OS call carries its `errno`, and
/// `description` spells it out (`strerror`), so messages can be shown as is.
public enum TopologyError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `hwloc_topology_init` failed (almost always out of memory).
    case initializationFailed(errno: Int32)
    /// hwloc rejected a synthetic description such as `"package:2 core:x"`.
    case invalidSyntheticDescription(String, errno: Int32)
    /// The XML file does not exist or cannot be read.
    case xmlFileUnreadable(path: String, errno: Int32)
    /// The XML file could be read but hwloc could not use it.
    case invalidXMLFile(path: String, errno: Int32)
    /// `hwloc_topology_load` (or setting its flags) failed.
    case loadFailed(source: String, errno: Int32)
    /// A CPU list string such as `"0-3,x"` could not be parsed.
    case invalidCPUList(String, reason: String)
    /// Binding to an empty CPU set was requested.
    case emptyCPUSet
    /// The requested PUs are not all in the topology.
    case cpuSetOutsideTopology(requested: String, available: String)
    /// `hwloc_set_cpubind` failed.
    case bindingFailed(cpuset: String, errno: Int32)
    /// `hwloc_get_cpubind` failed.
    case bindingQueryFailed(errno: Int32)

    public var description: String {
        switch self {
        case .initializationFailed(let code):
            return "hwloc could not create a topology: \(Self.explain(code))"
        case .invalidSyntheticDescription(let text, let code):
            return "invalid synthetic topology \"\(text)\" (expected e.g. \"package:2 numa:1 core:2 pu:1\"): "
                + Self.explain(code)
        case .xmlFileUnreadable(let path, let code):
            return "cannot read topology XML file \(path): \(Self.explain(code))"
        case .invalidXMLFile(let path, let code):
            return "hwloc could not parse topology XML file \(path): \(Self.explain(code))"
        case .loadFailed(let source, let code):
            return "hwloc could not load the topology of \(source): \(Self.explain(code))"
        case .invalidCPUList(let text, let reason):
            return "invalid CPU list \"\(text)\" (expected e.g. \"0-3,6\"): \(reason)"
        case .emptyCPUSet:
            return "cannot bind to an empty CPU set"
        case .cpuSetOutsideTopology(let requested, let available):
            return "CPU set \(requested) is not inside this topology's PUs \(available)"
        case .bindingFailed(let cpuset, let code):
            return "could not bind the current thread to PUs \(cpuset): \(Self.explain(code))"
        case .bindingQueryFailed(let code):
            return "could not read the current thread's CPU binding: \(Self.explain(code))"
        }
    }

    /// Formats an errno as `"No such file or directory (errno 2)"`.
    private static func explain(_ code: Int32) -> String {
        guard code != 0, let text = strerror(code) else { return "unknown error" }
        return "\(String(cString: text)) (errno \(code))"
    }
}
