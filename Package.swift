// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Multihead",
    products: [
        // MARK: Public API
        /// Swift users: `import Multihead`.
        .library(name: "Multihead", targets: ["Multihead"]),
        /// C and Python users: `libmultihead.so`, declared by `include/multihead.h`.
        .library(name: "multihead", type: .dynamic, targets: ["MultiheadC"]),
        .executable(name: "multihead-cli", targets: ["multihead"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: Public API
        .target(name: "Multihead", dependencies: ["MultiheadRuntime", "MultiheadKernels", "MultiheadTopology"]),
        .target(name: "MultiheadC", dependencies: ["Multihead", "CMultiheadABI"]),
        /// Exposes `include/multihead.h` (a link) to the Swift side of the C ABI.
        .target(name: "CMultiheadABI"),
        .executableTarget(
            name: "multihead",
            dependencies: ["Multihead", "MultiheadKernels", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // MARK: Implementation
        .target(name: "MultiheadRuntime", dependencies: ["MultiheadKernels", "MultiheadTopology"]),
        .target(name: "MultiheadKernels", dependencies: ["CMultiheadKernels"]),
        .target(name: "CMultiheadKernels"),
        .target(name: "MultiheadTopology", dependencies: ["CHwloc"]),
        .systemLibrary(name: "CHwloc", pkgConfig: "hwloc", providers: [.apt(["libhwloc-dev"])]),

        // MARK: Examples
        .executableTarget(name: "SeedExamples", dependencies: ["Multihead"], path: "examples/swift"),

        // MARK: Tests
        .testTarget(name: "MultiheadTests", dependencies: ["Multihead"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MultiheadKernelsTests", dependencies: ["MultiheadKernels"]),
        .testTarget(name: "MultiheadTopologyTests", dependencies: ["MultiheadTopology"]),
        .testTarget(name: "MultiheadRuntimeTests", dependencies: ["MultiheadRuntime"]),
    ],
    swiftLanguageModes: [.v5]
)
