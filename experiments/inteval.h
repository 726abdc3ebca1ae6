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
/* The first n images of the set as the model sees them (x: n·H·W·C floats; NULL: not kept) and
 * the float model's evaluation-mode logits for them (n·classes). */
void float_logits_on(Model *m, const Dataset *d, int batch_size, int n, float *x, float *logits);
/* The same for the integer program. */
void int_logits_on(IntModel *im, const Dataset *d, int batch_size, int n, float *x, float *logits);
#define ONNX_CHECK_IMAGES 1000
/* The program as ONNX QDQ at path, and path.check: the first ONNX_CHECK_IMAGES test images with the
 * integer engine's logits (and the fake-quant model's, when fq is not NULL) for
 * scripts/onnx_check.js; prints what was written and what the export approximates. Fatal
 * (`file: error: …`) when a file cannot be written. */
void export_onnx_checked(IntModel *im, Model *fq, const Dataset *test, int batch_size, const char *path, bool fused);
/* intmodel_agreement over the set (ag initialised by the caller). */
void int_agreement_on(const IntModel *im, Model *m, QuantContext *qc, const Dataset *d, int batch_size, int subset,
                      IntAgreement *ag);

#endif
