/* tape.h — reverse-mode autograd as a tape of op records.
 *
 * Every differentiable op (declared in core/ops.h; later also quantizers) builds its output, then calls
 * tape_push with a pointer to its static TapeOp {name, backward}. Records are allocated from the
 * step's arena and linked newest-first; tape_backward seeds d(loss) = 1 and walks them in reverse
 * creation order, which is a valid reverse topological order, so residual branches need no
 * hand-ordered calls: every consumer of a tensor runs its backward (accumulating into the
 * tensor's gradient with +=) before the tensor's producer reads that gradient.
 *
 * A backward consumes the records (a second backward before tape_reset sees only newer ones).
 * Once a record's backward has run, nothing reads its output's gradient again: the buffer goes
 * to a free list that later gradients reuse (and the tensor's `grad` becomes NULL), so
 * activation gradients cost the width of the backward frontier, not the depth of the network.
 * Set keep_grads to keep them all.
 * Records are made only when the tape records (not no_grad) and some input requires a gradient;
 * the output then requires one too. A backward is skipped when nothing flowed into its output.
 * Gradients of activations are arena buffers allocated zeroed on first use (tape_grad);
 * gradients of parameters live in their ParamSlab and are zeroed by the training step.
 *
 * `training` is the mode of the current step: BatchNorm uses batch statistics and updates its
 * running averages, dropout drops. It is independent of `no_grad` (calibration runs forward in
 * training mode without recording).
 */
#ifndef DQ_TAPE_H
#define DQ_TAPE_H

#include <stdbool.h>

#include "arena.h"
#include "tensor.h"

#define TAPE_MAX_INPUTS 4

typedef struct Tape Tape;
typedef struct TapeRecord TapeRecord;

/* An op's identity on the tape: its name (for errors and profiles) and its backward, which reads
 * r->out->grad and accumulates into the gradients of those r->in[i] that require one. */
/* What one record costs, for the profile: floating-point operations (compute-bound ops) or bytes
 * moved through memory (memory-bound ones), forward and backward. */
typedef struct TapeCost {
    double flops[2], bytes[2];  // [0] forward, [1] backward
} TapeCost;

typedef struct TapeOp {
    const char *name;
    void (*backward)(Tape *t, TapeRecord *r);
    void (*cost)(const TapeRecord *r, TapeCost *c);  // optional (profiles only)
} TapeOp;

struct TapeRecord {
    const TapeOp *op;
    Tensor *in[TAPE_MAX_INPUTS];  // inputs (NULL where unused)
    int n_in;
    Tensor *out;                  // output
    void *saved;                  // op-specific state saved for backward (arena memory)
    bool ref;                     // the tape's ref_kernels when the op ran: backward matches it
    TapeRecord *prev;             // the record made before this one
};

typedef struct GradLink GradLink;
typedef struct FreeGrad FreeGrad;

#define TAPE_PROFILE_SLOTS 32

/* Time per op kind when tape->profile is set: forward time is the time between an op's record
 * and the previous one (so it includes a little glue), backward is timed exactly. */
typedef struct TapeProfile {
    const TapeOp *op[TAPE_PROFILE_SLOTS];
    double forward_s[TAPE_PROFILE_SLOTS], backward_s[TAPE_PROFILE_SLOTS];
    TapeCost cost[TAPE_PROFILE_SLOTS];  // summed over the records whose backward ran
    long calls[TAPE_PROFILE_SLOTS];
    int n;
    double stamp;         // end of the last recorded op
} TapeProfile;

struct Tape {
    Arena *arena;         // activations, saved state, records, activation gradients
    TapeRecord *last;     // newest record
    int n_records;
    GradLink *grads;      // tensors given an arena gradient since the last reset
    FreeGrad *free_grads; // gradient buffers released during backward, for reuse
    bool keep_grads;      // keep every activation gradient after backward (debugging)
    TapeProfile *profile; // non-NULL: accumulate time per op kind
    bool no_grad;         // record nothing (inference, evaluation)
    bool compact;         // with no_grad: a sequence gives back each layer's intermediates once the
                          // next layer has its output (nn/container.c), so an evaluation keeps a
                          // few layers' activations, not the network's
    bool training;        // BatchNorm batch statistics, dropout on
    struct ActPattern *pattern;  // non-NULL: activations record or keep to it (activation.h)
    bool ref_kernels;     // ops run their reference kernels (the specification: slow); each record
                          // keeps the choice its forward made, so backward follows it
    /* Optional: called during backward with each record whose output gradient is complete (every
     * consumer has added its share), before the record's backward reads it; k counts the records
     * visited so far (0: the newest). Half-precision emulation rounds the gradient here. */
    void (*grad_hook)(void *ctx, const TapeRecord *r, int k);
    void *grad_hook_ctx;
    /* Optional: called with every layer's output as the layer returns it (nn/layer.c), in training
     * and evaluation; it may change the values in place (half precision rounds them there). */
    void (*value_hook)(void *ctx, Tensor *y);
    void *value_hook_ctx;
};

/* Training mode, recording, fast kernels — or the reference kernels when the environment has
 * DQ_REF_KERNELS set to anything but 0 (a switch for whole runs; code sets t->ref_kernels). */
void tape_init(Tape *t, Arena *arena);
/* Forget all records and reset the arena (everything of the last step is released). */
void tape_reset(Tape *t);

/* True if an op with these inputs must be recorded. */
bool tape_wants(const Tape *t, int n_in, Tensor *const *in);
/* Record op: out = op(in...). Returns the record (to attach r->saved), or NULL if not recorded.
 * Sets out->requires_grad. */
TapeRecord *tape_push(Tape *t, const TapeOp *op, Tensor *out, int n_in, Tensor *const *in);

/* d(loss)/d(loss) = 1, then every record in reverse. loss must have one element. */
void tape_backward(Tape *t, Tensor *loss);
/* The same with d(loss) = seed (loss scaling: every gradient comes out seed times larger). */
void tape_backward_seeded(Tape *t, Tensor *loss, float seed);
/* Same with a given output gradient (numel floats, copied), for non-scalar outputs. */
void tape_backward_from(Tape *t, Tensor *out, const float *dout);

/* The gradient buffer of x, allocated zeroed from the arena on first use. Such buffers live until
 * tape_reset, which sets the `grad` of every tensor it gave one back to NULL (so a leaf tensor
 * outside the arena is never left pointing into released memory). */
float *tape_grad(Tape *t, Tensor *x);
/* tape_grad(t, x) if x is non-NULL and requires a gradient, else NULL. */
float *tape_grad_of(Tape *t, Tensor *x);
/* Like tape_grad_of, but when x has no gradient yet the buffer is NOT zeroed and *overwrite is
 * set: the caller is the first writer and must store (=) every element instead of adding. This
 * saves a memset and a read pass for the many gradients that have a single producer. */
float *tape_grad_overwrite(Tape *t, Tensor *x, bool *overwrite);

/* Print the profile as a table, slowest first; `steps` divides the times. Beside each op kind with
 * a cost, its rate — GFLOP/s, or GB/s for memory-bound ops — and that rate's share of peak_gflops
 * or peak_gbs (0: no share column). */
void tape_profile_print(const TapeProfile *p, int steps, double peak_gflops, double peak_gbs);

/* Fatal unless a and b have the same shape: "<op>: shapes (..) and (..) differ". */
void tape_check_same_shape(const char *op, const Tensor *a, const Tensor *b);

#endif
