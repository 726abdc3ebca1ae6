/* fuzz_common.h — what the fuzz targets (fuzz_<parser>.c, built by `make fuzz` with clang's
 * libFuzzer under ASan+UBSan) and the seed-corpus generator (make_corpus.c) share.
 *
 * Every target calls a parser's non-exiting core on the fuzzer's bytes and frees what it made;
 * a crash, a sanitizer report, a leak, a hang or an allocation beyond what the input justifies
 * is a finding (scripts/fuzz.sh runs them). The checkpoint target reads into the model below,
 * a tiny network quantized with DDQ, so a file can carry every section a real one has.
 */
#ifndef DQ_FUZZ_COMMON_H
#define DQ_FUZZ_COMMON_H

#include "nn/model.h"
#include "quant/control.h"

#define FUZZ_TOTAL_STEPS 100  // the quantized run's length, in the corpus and in the target

typedef struct FuzzModel {
    QuantContext *qc;
    Model *m;
    QuantRun run;
} FuzzModel;

/* The network alone, its layers from f (the corpus also quantizes it with multipoint). */
Model *fuzz_tiny_net(const LayerFactory *f);
/* One evaluation forward of 4 random 4×4×1 images from seed (a calibration batch). */
void fuzz_forward_random(Model *m, uint64_t seed);
/* The model, calibrated on fixed random inputs, its run at step 0 of FUZZ_TOTAL_STEPS. */
void fuzz_model_init(FuzzModel *f);
void fuzz_model_free(FuzzModel *f);

#endif
