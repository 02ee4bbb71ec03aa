// The executable's entry point. SwiftPM links executables with `--defsym main=fuzz_forward_main`;
// built with -parse-as-library (as tests/fuzz/run.sh does) the module has no main of its own, so
// this function is main and hands control to libFuzzer's driver.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("fuzz_forward_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        // libFuzzer passes NULL for the empty input.
        var byte: UInt8 = 0
        return fuzzForward(data ?? withUnsafePointer(to: &byte) { $0 }, size)
    }
}
