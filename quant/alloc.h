/* alloc.h — mixed-precision allocation before fine-tuning (--q_alloc): an allocator picks each
 * unpinned layer's weight bits under the mean-bit budget --q_wbits, the bits go into the (LSQ)
 * weight quantizers before their first use, and the fine-tuning that follows is the fixed-bit
 * method's. Allocators: hawq (hawq.h), ompq (ompq.h: on the first batch only), bsq (bsq.h: bit planes trained on
 * the batches in turn, the strength bisected towards the budget), haq (haq.h: a DDPG agent
 * rewarded by a short fine-tune, the last quarter of the batches held out). The allocation is part of the run: alloc.csv lists it, and
 * a checkpoint carries it (section ALOC) so a resumed run can check it is fine-tuning the same bits.
 */
#ifndef DQ_ALLOC_H
#define DQ_ALLOC_H

#include "core/text.h"
#include "nn/model.h"
#include "qlayer.h"

typedef enum { ALLOC_NONE, ALLOC_HAWQ, ALLOC_OMPQ, ALLOC_BSQ, ALLOC_HAQ } QuantAllocKind;

/* What an allocator saw and chose, per quantized layer (qc->layers order). */
typedef struct QuantAlloc {
    QuantAllocKind kind;
    int n;                // qc->n_layers
    int *bits;            // (n) weight bits (pinned layers: their pinned bits)
    double *score;        // (n) the allocator's per-layer measure (hawq: Tr(H_l); ompq: θ_l); NAN for pinned
    double *score_se;     // (n) its standard error (hawq: over the probes), or 0
    double *cost;         // (n × 8) the objective's cost of layer l at b = 1 … 8 bits (hawq: Ω_l(b); ompq: −c_l·b), NAN where not evaluated
    double seconds;       // the search's wall time
    double param;         // bsq: the strength α it chose; haq: the best episode's held-out accuracy; else 0
    double mean_bits;     // Σ N_l·b_l / Σ N_l over the unpinned layers
} QuantAlloc;

QuantAllocKind quant_alloc_of(const QuantConfig *c);
const char *quant_alloc_name(QuantAllocKind k);
/* The training images it works on: --alloc_train_images for the allocators that train (bsq, haq),
 * --alloc_images for those that measure. */
int quant_alloc_images(const QuantConfig *c);

/* One labelled batch of the images an allocator measures on. */
typedef struct AllocBatch {
    Tensor *x;            // (N, H, W, C)
    const int *labels;    // (N)
} AllocBatch;

/* Runs the configured allocator on model m (its quantizers bypassed meanwhile: the FP32 network)
 * over the batches, its random draws from seed, and fills a; false with the reason in err (a
 * budget no allocation meets). */
bool quant_alloc_search(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, uint64_t seed,
                        QuantAlloc *a, char *err, size_t err_size);
/* The gradient of the mean over batches of each batch's mean cross-entropy into m's slab, on
 * tape t (its training flag decides BatchNorm's mode): the allocators' shared step. */
void quant_alloc_loss_grad(Model *m, Tape *t, const AllocBatch *batches, int n_batches);
/* Puts a->bits into the weight quantizers (before calibration). */
void quant_alloc_apply(QuantContext *qc, const QuantAlloc *a);
void quant_alloc_free(QuantAlloc *a); /* the arrays; accepts NULL */

/* alloc.csv: layer, params, bits, score, score_se, then the cost at 2 … 8 bits. */
void quant_alloc_write_csv(const QuantContext *qc, const QuantAlloc *a, Text *out);
/* The bits as a checkpoint section's bytes (names and bits), and the check on resume: false with
 * the first difference in err. */
void quant_alloc_save(const QuantContext *qc, const QuantAlloc *a, Text *out);
/* The allocation quant_alloc_save wrote (data, size bytes) back into a for qc's layers, nothing
 * measured (scores NAN, seconds 0): a stopped or finished run resumes without searching again.
 * False with the reason in err when the lines do not name qc's layers in order with 1–8 bits. */
bool quant_alloc_parse(const QuantContext *qc, const void *data, size_t size, QuantAlloc *a, char *err, size_t err_size);
bool quant_alloc_matches(const QuantContext *qc, const QuantAlloc *a, const void *data, size_t size, char *err,
                         size_t err_size);

#endif
