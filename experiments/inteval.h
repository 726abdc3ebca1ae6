/* inteval.h — the integer engine on a dataset: a .dqm program's accuracy and speed, its agreement
 * with the fake-quant model it came from, and a float model's evaluation speed to set beside it.
 * Speeds time the forward passes alone (the loader's work is outside the clock), over the whole
 * set in batches, on the threads threads_init started.
 */
#ifndef DQ_INTEVAL_H
#define DQ_INTEVAL_H

#include "data/dataset.h"
#include "nn/model.h"
#include "quant/intmodel.h"

typedef struct EvalSpeed {
    double acc;        // top-1 in [0, 1]
    long long n;       // images
    double seconds;    // in forward passes
    double img_s;
} EvalSpeed;

/* ref: the plain reference kernels. pred: each image's top-1 class, or NULL. */
EvalSpeed int_evaluate(IntModel *im, const Dataset *d, int batch_size, int subset, bool ref, int *pred);
/* The float model (FP32 or fake-quant) in evaluation mode, timed the same way. */
EvalSpeed float_evaluate(Model *m, const Dataset *d, int batch_size, int subset, int *pred);
/* The first n images of the set as the model sees them (x: n·H·W·C floats) and the float model's
 * evaluation-mode logits for them (n·classes). */
void float_logits_on(Model *m, const Dataset *d, int batch_size, int n, float *x, float *logits);
/* The same images and the integer program's logits for them. */
void int_logits_on(IntModel *im, const Dataset *d, int batch_size, int n, float *x, float *logits);
/* One line on what an ONNX QDQ export approximates (level tables, boundaries on grid points,
 * clamped weights). */
void onnx_stats_line(const IntOnnxStats *st);
/* intmodel_agreement over the set (ag initialised by the caller). */
void int_agreement_on(const IntModel *im, Model *m, QuantContext *qc, const Dataset *d, int batch_size, int subset,
                      IntAgreement *ag);

#endif
