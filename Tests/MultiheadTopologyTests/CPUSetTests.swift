import MultiheadTopology
import XCTest

/// `CPUSet`: construction, list syntax round trips, parse errors, set algebra.
final class CPUSetTests: XCTestCase {
    func testIndicesRoundTrip() {
        let set = CPUSet(puOSIndices: [6, 0, 3, 1, 2, 3])
        XCTAssertEqual(set.puOSIndices, [0, 1, 2, 3, 6])
        XCTAssertEqual(set.count, 5)
        XCTAssertFalse(set.isEmpty)
        XCTAssertTrue(set.contains(6))
        XCTAssertFalse(set.contains(4))
        XCTAssertFalse(set.contains(-1))
        XCTAssertEqual(set.description, "0-3,6")
    }

    func testEmptySet() throws {
        let set = CPUSet()
        XCTAssertTrue(set.isEmpty)
        XCTAssertEqual(set.count, 0)
        XCTAssertEqual(set.puOSIndices, [])
        XCTAssertEqual(set.description, "")
        XCTAssertEqual(try CPUSet(parsing: ""), set)
        XCTAssertEqual(try CPUSet(parsing: "  "), set)
    }

    func testParsingRoundTrips() throws {
        for text in ["0", "0-3,6", "1,3,5,7", "0-127", "64-65,200"] {
            XCTAssertEqual(try CPUSet(parsing: text).description, text)
        }
        XCTAssertEqual(try CPUSet(parsing: " 0 - 1 ,4").puOSIndices, [0, 1, 4], "spaces around items are fine")
        XCTAssertEqual(try CPUSet(parsing: "0,1,2,3").description, "0-3")
        XCTAssertEqual(try CPUSet(parsing: "2-2").puOSIndices, [2])
        let wide = try CPUSet(parsing: "1000")
        XCTAssertEqual(wide.puOSIndices, [1000])
        XCTAssertEqual(try CPUSet(parsing: wide.description), wide)
    }

    func testParsingErrors() {
        let cases: [(String, String)] = [
            ("abc", "is not an index"),
            ("0x3", "is not an index"),
            ("3-1", "is decreasing"),
            ("1-", "is not an index"),
            ("-1", "is not an index"),
            ("1,,2", "empty item"),
            ("1,", "empty item"),
            ("1-2-3", "more than one '-'"),
            ("+1", "is not an index"),
            ("99999999999999999999999", "larger than the maximum"),
            ("0-2000000", "larger than the maximum"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try CPUSet(parsing: text), "\"\(text)\" should not parse") { error in
                guard case TopologyError.invalidCPUList(let list, let why) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(list, text)
                XCTAssertTrue(why.contains(reason), "\"\(text)\": \(why)")
                XCTAssertTrue("\(error)".hasPrefix("invalid CPU list \"\(text)\""), "\(error)")
            }
        }
    }

    func testSetAlgebra() {
        let low = CPUSet(puOSIndices: 0...3)
        let even = CPUSet(puOSIndices: stride(from: 0, through: 8, by: 2))
        XCTAssertEqual(low.union(even).description, "0-4,6,8")
        XCTAssertEqual(low.intersection(even).puOSIndices, [0, 2])
        XCTAssertTrue(CPUSet(puOSIndices: [1, 2]).isSubset(of: low))
        XCTAssertFalse(even.isSubset(of: low))
        XCTAssertTrue(CPUSet().isSubset(of: low))
    }

    func testEqualityAndHashingFollowContents() {
        let first = CPUSet(puOSIndices: [1, 2, 3])
        let second = CPUSet(puOSIndices: [3, 2, 1])
        XCTAssertEqual(first, second)
        XCTAssertNotEqual(first, CPUSet(puOSIndices: [1, 2]))
        XCTAssertEqual(Set([first, second]).count, 1)
    }

    func testManySetsAreFreed() {
        // Exercises deinit; run under valgrind or ASan to see leaks.
        for index in 0..<10_000 {
            let set = CPUSet(puOSIndices: [index % 64])
            XCTAssertEqual(set.count, 1)
        }
    }
}
