/* The C ABI is implemented in Swift (Sources/MultiheadC); this target only exports the header to it. */
