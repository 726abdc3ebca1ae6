/* flips.h — --q_flips, a diagnostic: how often the weights' quantized values change from one
 * optimizer step to the next during fine-tuning ("oscillation": a latent weight at a decision
 * threshold that the straight-through gradient pushes back and forth across it).
 *
 * After every step each quantized layer's weights go through its quantizer and each value is
 * named by its level's index (the nearest of the quantizer's levels, so an LSQ step that moves
 * every level does not count as a change); a weight whose index differs from the last step's
 * flipped. flips.csv gets one row per step and layer: step,layer,bits,groups,weights,flips.
 * Written from the step the run (re)started at; a resumed run's earlier rows are not kept.
 */
#ifndef DQ_FLIPS_H
#define DQ_FLIPS_H

#include <stdio.h>

#include "quant/qlayer.h"

typedef struct Flips Flips;

/* NULL when path cannot be written (err says why). */
Flips *flips_open(const QuantContext *qc, const char *path, char *err, size_t err_size);
/* After an optimizer step: count and append this step's rows. */
void flips_step(Flips *f, long long step);
/* Prints the mean share of weights flipping per step over the last `tail` steps counted, per
 * weight bits, and the layer that flipped most; closes the file and frees f (accepts NULL). */
void flips_close(Flips *f, long long tail);

#endif
