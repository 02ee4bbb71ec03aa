// CHwloc: the hwloc C API as a Clang module for Swift.
//
// Only `MultiheadTopology` imports this module, and only its `Hwloc*.swift`
// files make raw calls. Swift cannot import hwloc's function-like macros
// (`hwloc_bitmap_foreach_begin` and friends); the Swift side walks bitmaps
// with `hwloc_bitmap_first` / `hwloc_bitmap_next` instead, so no C helpers
// are needed here.
#ifndef CHWLOC_SHIM_H
#define CHWLOC_SHIM_H

#include <hwloc.h>

#endif // CHWLOC_SHIM_H
