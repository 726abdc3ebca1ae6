/* ops.c — the switch between reference and fast kernels. */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

bool ops_use_ref_kernels = false;

void ops_init_from_env(void) {
    const char *v = getenv("DQ_REF_KERNELS");
    ops_use_ref_kernels = v && strcmp(v, "0") != 0 && *v;
}
