// swift-tools-version:6.0
// libFuzzer harnesses for Multihead. Built only by tests/fuzz/run.sh, with the sanitizer flags on
// the command line (unsafe flags stay out of the main Package.swift):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library ...
import PackageDescription

let package = Package(
    name: "MultiheadFuzz",
    dependencies: [
        .package(name: "Multihead", path: "../.."),
    ],
    targets: [
        /// SafetensorsFile(data:) on arbitrary bytes, then every tensor read back.
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: [.product(name: "Multihead", package: "Multihead")],
            path: "Sources/FuzzSafetensors"),
        /// include/multihead.h, for calling libmultihead's C functions from Swift.
        .target(name: "CMultiheadHeader", path: "Sources/CMultiheadHeader"),
        /// mh_mha_create / mh_mha_output_shapes / mh_mha_forward on descriptors decoded from the
        /// input, checked against a float64 reference when the call succeeds.
        .executableTarget(
            name: "fuzz-forward",
            dependencies: ["CMultiheadHeader", .product(name: "multihead", package: "Multihead")],
            path: "Sources/FuzzForward"),
    ],
    swiftLanguageModes: [.v5]
)
