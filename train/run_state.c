/* run_state.c — the trainer's checkpoint sections (see run_state.h). */
#include "run_state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

#define STATE_VERSION 2
#define HIST_FIELDS 8
#define MAX_EPOCHS 100000  // the --epochs option's range

/* TRST: u32 version, u32 epoch, u32 batch, u32 batches, u64 seed, u64 correct, u64 seen,
 * f64 loss_sum, f64 seconds, u64 rng state, u64 rng inc, u64 has_spare, f64 spare. */
enum { TRST_BYTES = 4 * 4 + 8 * 9 };

static void put(uint8_t **p, const void *src, size_t n) {
    memcpy(*p, src, n);
    *p += n;
}

static void get(const uint8_t **p, void *dst, size_t n) {
    memcpy(dst, *p, n);
    *p += n;
}

void run_state_save(Checkpoint *c, const RunState *s, const char *identity, const float *velocity, size_t numel) {
    uint8_t b[TRST_BYTES], *p = b;
    uint32_t u[4] = {STATE_VERSION, (uint32_t)s->epoch, (uint32_t)s->batch, (uint32_t)s->batches};
    uint64_t q[3] = {s->seed, (uint64_t)s->correct, (uint64_t)s->seen};
    double f[2] = {s->loss_sum, s->seconds};
    uint64_t rng[3] = {s->dropout.state, s->dropout.inc, s->dropout.has_spare};
    put(&p, u, sizeof u), put(&p, q, sizeof q), put(&p, f, sizeof f), put(&p, rng, sizeof rng);
    put(&p, &s->dropout.spare, sizeof s->dropout.spare);
    DQ_CHECK(p == b + TRST_BYTES);
    ckpt_add(c, "TRST", b, sizeof b);
    double *rows = dq_malloc((size_t)(s->epoch ? s->epoch : 1) * HIST_FIELDS * sizeof(double));
    for (int i = 0; i < s->epoch; i++) {
        const EpochLog *h = &s->history[i];
        double r[HIST_FIELDS] = {h->epoch, h->lr, h->train_loss, h->train_acc, h->test_loss, h->test_acc, h->seconds, h->img_per_s};
        memcpy(rows + (size_t)i * HIST_FIELDS, r, sizeof r);
    }
    ckpt_add(c, "HIST", rows, (size_t)s->epoch * HIST_FIELDS * sizeof(double));
    dq_free(rows);
    ckpt_add(c, "OPTS", identity, strlen(identity));
    ckpt_add(c, "VELO", velocity, numel * sizeof(float));
}

static bool finite_in(double x, double lo, double hi) { return x >= lo && x <= hi; }  // NaN: false

/* The position from TRST, or from a first-version META (epochs, seed). */
static bool parse_position(const Checkpoint *c, RunState *s, char *err, size_t es) {
    const CkptSection *t = ckpt_find(c, "TRST"), *m = ckpt_find(c, "META");
    if (!t) {
        uint64_t meta[2];
        if (!m || m->size != sizeof meta) return dq_fail(err, es, "no run state (section TRST or META) in the checkpoint");
        memcpy(meta, m->data, sizeof meta);
        if (meta[0] > MAX_EPOCHS) return dq_fail(err, es, "META holds %llu epochs", (unsigned long long)meta[0]);
        s->epoch = (int)meta[0], s->seed = meta[1];
        return true;
    }
    if (t->size != TRST_BYTES) return dq_fail(err, es, "section TRST has %zu bytes, expected %d", t->size, TRST_BYTES);
    const uint8_t *p = t->data;
    uint32_t u[4];
    uint64_t q[3], rng[3];
    double f[2];
    get(&p, u, sizeof u), get(&p, q, sizeof q), get(&p, f, sizeof f), get(&p, rng, sizeof rng);
    get(&p, &s->dropout.spare, sizeof s->dropout.spare);
    if (u[0] != STATE_VERSION) return dq_fail(err, es, "run state version %u, this build reads %d", u[0], STATE_VERSION);
    if (u[1] > MAX_EPOCHS || u[3] < 1 || u[3] > (1u << 30) || u[2] >= u[3])
        return dq_fail(err, es, "run state at epoch %u, batch %u of %u", u[1], u[2], u[3]);
    s->epoch = (int)u[1], s->batch = (int)u[2], s->batches = (int)u[3];
    s->seed = q[0];
    if (q[2] > (uint64_t)1 << 50 || q[1] > q[2] || (s->batch == 0 && q[2] != 0))
        return dq_fail(err, es, "run state: %llu correct of %llu seen after %d batches", (unsigned long long)q[1],
                    (unsigned long long)q[2], s->batch);
    s->correct = (long long)q[1], s->seen = (long long)q[2];
    if (!finite_in(f[0], 0, 1e30) || !finite_in(f[1], 0, 1e12))
        return dq_fail(err, es, "run state: loss sum %g, %g seconds", f[0], f[1]);
    s->loss_sum = f[0], s->seconds = f[1];
    if (!(rng[1] & 1) || rng[2] > 1 || !isfinite(s->dropout.spare)) return dq_fail(err, es, "run state: malformed dropout stream");
    s->dropout.state = rng[0], s->dropout.inc = rng[1], s->dropout.has_spare = rng[2] != 0;
    return true;
}

bool run_state_parse(const Checkpoint *c, size_t numel, RunState *s, char *err, size_t es) {
    memset(s, 0, sizeof *s);
    if (!parse_position(c, s, err, es)) return false;
    const CkptSection *h, *v;
    if (!ckpt_section(c, "HIST", (size_t)s->epoch * HIST_FIELDS * sizeof(double), &h, err, es)) return false;
    if (s->epoch == 0 && h->size != 0) return dq_fail(err, es, "section HIST holds rows of no epoch");
    if (!ckpt_section(c, "VELO", numel * sizeof(float), &v, err, es) || (numel == 0 && v->size != 0))
        return dq_fail(err, es, "section VELO does not hold the %zu velocities of this model", numel);
    s->history = dq_calloc((size_t)(s->epoch ? s->epoch : 1), sizeof *s->history);
    for (int i = 0; i < s->epoch; i++) {
        double r[HIST_FIELDS];
        memcpy(r, h->data + (size_t)i * HIST_FIELDS * sizeof(double), sizeof r);
        // epoch numbers are 1..epoch in order (an out-of-range double once became an int unchecked)
        bool ok = r[0] == i + 1 && finite_in(r[1], 0, 1e6) && finite_in(r[2], 0, 1e30) && finite_in(r[3], 0, 1) &&
                  finite_in(r[4], 0, 1e30) && finite_in(r[5], 0, 1) && finite_in(r[6], 0, 1e12) && finite_in(r[7], 0, 1e15);
        if (!ok) {
            run_state_free(s);
            return dq_fail(err, es, "history row %d is malformed (epoch %g, accuracy %g)", i + 1, r[0], r[5]);
        }
        s->history[i] = (EpochLog){.epoch = i + 1, .lr = r[1], .train_loss = r[2], .train_acc = r[3], .test_loss = r[4],
                                   .test_acc = r[5], .seconds = r[6], .img_per_s = r[7]};
    }
    const CkptSection *o = ckpt_find(c, "OPTS");
    if (o) {
        if (memchr(o->data, 0, o->size)) {
            run_state_free(s);
            return dq_fail(err, es, "section OPTS is not text");
        }
        s->identity = (const char *)o->data, s->identity_len = o->size;
    }
    return true;
}

void run_state_free(RunState *s) {
    if (!s) return;
    dq_free(s->history);
    s->history = NULL;
}
