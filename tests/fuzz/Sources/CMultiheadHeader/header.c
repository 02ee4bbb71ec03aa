/* Exposes include/multihead.h (a link) to the forward fuzzer; the functions live in libmultihead.so. */
#include "multihead.h"
