/* gradcheck.h — compare backward against central differences of the forward.
 *
 * The function under test builds a graph on the tape from `inputs` and returns its output y.
 * The checker forms the scalar L = Σ_i r_i·y_i with fixed random weights r (so every output
 * element matters), runs backward once for the analytic dL/dx, then for random positions of each
 * input that requires a gradient perturbs x by ±eps and evaluates
 *     numeric = (L(x + eps) − L(x − eps)) / (2·eps)
 * with L summed in double. The error at a position is |analytic − numeric| / max(|analytic|,
 * |numeric|, floor); the result reports the worst. Inputs' own `grad` pointers are swapped for
 * checker buffers during the check and restored after.
 */
#ifndef DQ_GRADCHECK_H
#define DQ_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "tape.h"

typedef Tensor *(*GradcheckFn)(Tape *t, Tensor **inputs, void *ctx);

typedef struct GradcheckOptions {
    double eps;       // perturbation (default 1e-2)
    double floor;     // smallest denominator of the relative error (default 1e-3)
    int probes;       // positions per input; all of them when the input is smaller (default 24)
    uint64_t seed;    // positions and output weights (default 1)
    bool training;    // tape->training during the check (default false = eval mode)
    bool skip_kinks;  // skip positions where the one-sided differences disagree by more than
                      // kink_tol (the probe straddles a ReLU/max kink): whole networks have many
    double kink_tol;  // relative disagreement of the one-sided slopes taken as a kink (0.2)
    bool ref_kernels; // run the ops on their reference kernels (the checker's own tape)
} GradcheckOptions;

typedef struct GradcheckResult {
    double max_err;   // worst relative error
    int input;        // where it was: input index
    size_t index;     //               element index
    double analytic;  //               backward's value
    double numeric;   //               central difference
    int checked;      // positions compared
    int skipped;      // positions skipped as kinks (skip_kinks)
} GradcheckResult;

/* opts may be NULL (defaults). Fields of *opts left 0 take their defaults. */
GradcheckResult gradcheck(GradcheckFn fn, void *ctx, Tensor **inputs, int n_inputs,
                          const GradcheckOptions *opts);

#endif
