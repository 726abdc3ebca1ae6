/* fuzz_checkpoint.c — the checkpoint reader as --resume uses it: the container (magic, CRC,
 * sections), the parameter table into a model, the trainer's run state, and the quantizers'
 * state; after a state that loads, one quantizer step and one forward pass run on it (a crafted
 * counter must not overflow there, crafted levels must not send the kernels out of their tables). The CRC is recomputed over the fuzzer's bytes first, so the mutations reach
 * the sections instead of dying at the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"
#include "fuzz_common.h"
#include "train/run_state.h"

static FuzzModel model;
static Arena arena, inputs;
static Tape tape;
static Tensor *x;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_model_init(&model);
    arena_init(&arena, 1 << 20, 0);
    arena_init(&inputs, 1 << 12, 0);
    tape_init(&tape, &arena);
    tape.no_grad = true, tape.training = false;
    x = tensor_new4(&inputs, 2, 4, 4, 1);
    for (size_t i = 0; i < x->numel; i++) x->data[i] = (float)i / 8 - 1;
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
            if (quant_run_load(&model.run, &b, err, sizeof err)) {
                if (model.run.step < model.run.total_steps) quant_run_step(&model.run, 0.01f);
                tape_reset(&tape);
                model_forward(model.m, &tape, x);
            }
        }
    }
    ckpt_free(&c);
    return 0;
}
