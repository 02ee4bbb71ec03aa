#include "CMultiheadKernels.h"
int mh_kernels_isa_level(void) { return 0; }
