/* bnrecal.h — --q_bn_recal, a diagnostic: BatchNorm's running statistics re-estimated with the
 * quantizers on, the test set evaluated again, and how far each BatchNorm layer's statistics had
 * been from the re-estimated ones.
 *
 * Training-mode forwards of N training batches (nothing recorded, nothing learns), each
 * BatchNorm's statistics the plain average of the N batches' (nn/precise_bn.h: not training's
 * running average, which is mostly its last ten or twenty batches and, at low bits, moves top-1 by
 * many points from one window to the next), twice: on images augmented as training augments them
 * (random crop, flips) and on un-augmented images, the distribution the test set has (the model
 * keeps these). Per layer, the trained statistics against the un-augmented ones: the mean over
 * channels of |μ_kept − μ_new| / σ_new (shift) and of |ln(σ²_kept / σ²_new)| (scale), and their
 * largest, as CSV.
 * And where the difference grows (…_trace.csv beside it): on the first 256 test images, the share
 * of each quantized layer's input codes that change — and their relative L1 change — when the
 * trained statistics replace the re-estimated ones everywhere, and in the first BatchNorm layer
 * only; the top-1 decisions that change with each. The model's other files are not touched.
 */
#ifndef DQ_BNRECAL_H
#define DQ_BNRECAL_H

#include "data/dataset.h"
#include "nn/model.h"
#include "quant/qlayer.h"
#include "train/trainer.h"

/* Top-1 on test after re-estimation over `batches` un-augmented batches of train (the augmented
 * pass is printed); csv_path ("" for none) gets one row per BatchNorm layer; the three layers
 * that differ most are printed. */
double bn_recalibrate(Model *m, QuantContext *qc, const Dataset *train, const Dataset *test, const TrainConfig *cfg,
                      int batches, double acc_before, const char *csv_path);

#endif
