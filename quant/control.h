/* control.h — what a quantized fine-tuning run does around the optimizer, for every method,
 * and DDQ's budget controller.
 *
 * Per step (quant_run_step, after the optimizer): every quantizer's step() (DDQ: levels,
 * projections, gates; LSQ/PACT: keep steps positive). For DDQ additionally, in order:
 *   phase   by progress t of the run: warm-up (gates and levels frozen) for t < warmup,
 *           joint until warmup + joint, then frozen gates;
 *   λ       dual ascent λ ← max(0, λ + η·(Mem/ζ − 1)), one λ for weights and one for
 *           activations (variant pi: with e = Mem/ζ − 1, I ← I + η·e and λ = I + kp·e, both signs:
 *           a negative price buys bits back when under the budget; variant hinge: λ = hinge while
 *           Mem > ζ, else 0; variant bitops: one λ on Σ MACs·b_w·b_a); variant ramp: ζ from 8 bits
 *           down to the target over the first half of the joint phase;
 *   prices  λ·N_l/ζ per quantizer (bitops: λ·MACs·b_other/ζ), given to the gates;
 *   settle  in the last --ddq_settle of the joint phase, a gate may flip only if the flip brings
 *           its budget's sum closer to the target (|Mem − ζ| falls): the bits land on the budget;
 *   freeze  entering the frozen phase, the final guarantee: merge (over budget) or un-merge
 *           (under budget) one bit at a time in the layer whose bit is cheapest / most useful by
 *           its smoothed signal per element, until the budget holds and is used; the bits moved
 *           are logged.
 * Pinned quantizers (first, last layer) are outside every sum.
 */
#ifndef DQ_CONTROL_H
#define DQ_CONTROL_H

#include <stdio.h>

#include "qlayer.h"

typedef struct QuantBudget {
    double mem_w, mem_a;           // Σ N·b over unpinned weight / activation quantizers
    double n_w, n_a;               // Σ N
    double bitops, macs;           // Σ MACs·b_w·b_a, Σ MACs (unpinned layers)
    double mean_w, mean_a;         // mem / n: mean bits
} QuantBudget;

/* One step of DDQ's controller, as ddq_trace.csv shows it. */
typedef struct QuantTraceRow {
    long long step, phase;         // (no padding: the rows are saved as bytes)
    double lambda_w, lambda_a;     // bit prices after the step
    double mean_w, mean_a;         // mean bits
    double target_w, target_a;     // budget targets in effect (ramp)
} QuantTraceRow;

typedef struct QuantRun {
    QuantContext *qc;
    long long step, total_steps;   // optimizer steps so far / in the run
    float lr_peak;                 // the schedule's peak (level learning rates are relative to it)
    DdqPhase phase;                // DDQ: what learns now (set in every quantizer)
    double lambda_w, lambda_a;     // bit prices (bitops: lambda_w only)
    double integ_w, integ_a;       // pi: the prices' integral terms
    double moved_w, moved_a;       // mean bits moved by the final guarantee (signed; bitops: in
                                   // moved_w, the change of Σ MACs·b_w·b_a per MAC)
    QuantTraceRow *trace_rows;     // DDQ: one row per step so far (saved with the state, so the
    long long n_trace, cap_trace;  // trace file can always be rewritten to match a checkpoint)
    FILE *trace;                   // optional: each new row is also appended here as CSV, flushed
} QuantRun;

void quant_run_init(QuantRun *r, QuantContext *qc, long long total_steps, float lr_peak);
void quant_run_free(QuantRun *r); /* the trace rows; accepts NULL */
/* After every optimizer step; lr is the current learning rate. */
void quant_run_step(QuantRun *r, float lr);
QuantBudget quant_budget(const QuantContext *qc);
/* Apply the DDQ final guarantee now (also called when the frozen phase starts). */
void quant_run_guarantee(QuantRun *r);

/* Calibration: begin puts activation quantizers in observing mode (data passes unchanged),
 * end computes their ranges and activates every quantizer. Run forwards in between. */
void quant_calibrate_begin(QuantContext *qc);
/* The same with the weights passing through meanwhile: the activations' ranges measured on the
 * FP32 weights (an allocator trying bits, multipoint's points still to be built from them). */
void quant_calibrate_begin_fp32_weights(QuantContext *qc);
void quant_calibrate_end(QuantContext *qc);

/* All quantizer state, the run's state and the trace rows as one blob (a checkpoint section). */
void quant_run_save(const QuantRun *r, QBytes *b);
/* Restore it into a run of the same model and length, every field checked; false with the reason
 * in err (the quantizers may then be partly loaded: discard them). */
bool quant_run_load(QuantRun *r, QBytes *b, char *err, size_t err_size);
/* The trace as CSV text (header and one line per row), for ddq_trace.csv. */
void quant_trace_csv_header(FILE *f);
void quant_trace_csv_row(FILE *f, const QuantTraceRow *row);

#endif
