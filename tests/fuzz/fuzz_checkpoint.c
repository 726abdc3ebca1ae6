/* fuzz_checkpoint.c — the checkpoint reader as --resume uses it: the container (magic, CRC,
 * sections), the parameter table into a model, the trainer's run state, and the quantizers'
 * state; after a state that loads, one quantizer step runs on it (a crafted counter must not
 * overflow there). The CRC is recomputed over the fuzzer's bytes first, so the mutations reach
 * the sections instead of dying at the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"
#include "fuzz_common.h"
#include "train/run_state.h"

static FuzzModel model;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_model_init(&model);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *file = dq_malloc(size ? size : 1);
    memcpy(file, data, size);
    if (size >= 20) {  // a valid CRC over whatever came before it
        uint32_t crc = crc32_update(0, file, size - 4);
        memcpy(file + size - 4, &crc, 4);
    }
    Checkpoint c;
    char err[1024];
    if (ckpt_parse(&c, file, size, "fuzz.bin", err, sizeof err)) {
        int copied;
        ckpt_read_params(&c, &model.m->slab, true, &copied, err, sizeof err);
        RunState s;
        if (run_state_parse(&c, model.m->slab.numel, &s, err, sizeof err)) run_state_free(&s);
        const CkptSection *q = ckpt_find(&c, "QUNT");
        if (q) {
            QBytes b = qbytes_view(q->data, q->size);
            if (quant_run_load(&model.run, &b, err, sizeof err) && model.run.step < model.run.total_steps)
                quant_run_step(&model.run, 0.01f);
        }
    }
    ckpt_free(&c);
    return 0;
}
