#ifndef CMULTIHEAD_KERNELS_H
#define CMULTIHEAD_KERNELS_H
/* ISA-specific micro-kernels; see Sources/MultiheadKernels for the Swift side. */
int mh_kernels_isa_level(void);
#endif
