/* ddq.c — the DDQ quantizer: fine grid, merged bits, nearest-coarse forward, level gradients,
 * frontier (or product-rule) gate signals, gate updates. See ddq.h and docs/ddq.md.
 *
 * Legend: K = 8 bits of fine index, m merged bits, B = 2^m fine levels per block, b = K − m
 * bits, nc = 2^b coarse values, j a block (bin) index, i a fine index, e an element.
 */
#include "ddq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "ddq_kernels.h"

typedef struct Ddq {
    Quantizer base;
    const DdqConfig *cfg;
    Tensor *fine;                 // (256) fine levels, slab parameter (PARAM_EXTERNAL)
    float vel[DDQ_FINE];          // momentum (or Adam first moment) of the fine levels
    float vel2[DDQ_FINE];         // Adam second moment
    long long adam_t;
    int m;                        // merged bits
    int zero_index;               // fine index pinned at 0, or −1
    DdqTables tab;                // coarse values, thresholds, … at m: what the kernels read
    float gate_merge, gate_unmerge;
    double ema_down, ema_up, ema_down_pos, ema_up_neg;
    double sig_down, sig_up;
    float gate[DDQ_K];            // product-rule variant: one gate per bit (positive = merged)
    double ema_gate[DDQ_K], sig_gate[DDQ_K];
    int flips;
    float price;
    bool no_merge, no_unmerge;    // the controller's settling window: flips that would move the
                                  // budget's sum away from its target are held back
    DdqPhase phase;               // what learns now
    float step;                   // fine step d at initialisation (the gap's unit)
    QSamples samples;             // calibration data (activations)
    int channels;                 // per-channel weights: C scales (1: per tensor)
    float *scale;                 // (C) s_c, NULL per tensor
    float snap;                   // ddq_snap: coarse values are snap·k, k in [snap_lo, snap_hi]; 0: off
    int snap_lo, snap_hi;
    DdqNear near_up, near_down;   // the level sets at m − 1 and m + 1 merged bits (their per-bin
                                  // tables: --ddq_merge_centered only)
} Ddq;

static const QuantizerOps DDQ_OPS;

bool ddq_is(const Quantizer *q) { return q->ops == &DDQ_OPS; }

/* ------------------------------------------------------------------ tables */
/* Coarse values at m merged bits: block means, the block holding zero_index exactly 0 —
 * --ddq_merge_centered: all of them translated by that block's mean, so that it is 0 (from a
 * uniform fine grid: LSQ's level set at every bitwidth, docs/ddq.md §1). */
static int table_at(const Ddq *d, int m, float *out) {
    int B = 1 << m, nc = DDQ_FINE >> m;
    const float *q = d->fine->data;
    double mean[DDQ_FINE];
    for (int j = 0; j < nc; j++) {
        double s = 0;
        for (int i = j * B; i < (j + 1) * B; i++) s += q[i];
        mean[j] = s / B;
    }
    bool pinned = d->cfg->pin_zero && d->zero_index >= 0;
    double shift = pinned && d->cfg->merge_centered ? mean[d->zero_index >> m] : 0;
    for (int j = 0; j < nc; j++) out[j] = (float)(mean[j] - shift);
    if (pinned) out[d->zero_index >> m] = 0;
    return nc;
}

/* For each bin [cur[b−1], cur[b]) of the current level set (decision points cur, nc bins), the
 * levels of t (t->n levels in t->v, set by rebuild) its elements can reach: from k0, the number
 * of t's decision points ≤ cur[b−1], to k1, the number < cur[b] (ddq_nearest_from's index is the
 * number ≤ x; both counts grow with b, so one sweep finds them all). */
static void near_tables(DdqNear *t, const float *cur, int nc) {
    if (!t->n) return;
    for (int j = 0; j + 1 < t->n; j++) t->thresh[j] = 0.5f * (t->v[j] + t->v[j + 1]);
    int k0 = 0, k1 = 0;
    t->wide_low = 0;
    for (int b = 0; b < nc; b++) {
        if (b > 0)
            while (k0 < t->n - 1 && t->thresh[k0] <= cur[b - 1]) k0++;
        if (b + 1 < nc)
            while (k1 < t->n - 1 && t->thresh[k1] < cur[b]) k1++;
        else k1 = t->n - 1;
        int hi = k1 > k0 ? k1 : k0, mid = k0 + 1 < hi ? k0 + 1 : hi;  // (hi = k0: an empty bin)
        t->wide[b] = hi - k0 > 2;
        if (t->wide[b] && b < 64) t->wide_low |= 1ull << b;
        t->c0[b] = t->v[k0], t->c1[b] = t->v[mid], t->c2[b] = t->v[hi];
        t->t0[b] = hi > k0 ? t->thresh[k0] : INFINITY;
        t->t1[b] = hi > k0 + 1 ? t->thresh[k0 + 1] : INFINITY;
    }
}

int ddq_coarse_at(const Quantizer *q, int m, float *out) { return table_at((const Ddq *)q, m, out); }

/* The coarse values on the snap grid (the pinned 0 stays 0: k = 0 is always in the window). */
static void snap_values(const Ddq *d, float *v, int n) {
    for (int j = 0; j < n; j++) {
        double k = nearbyint(v[j] / d->snap);
        v[j] = (float)(d->snap * (k < d->snap_lo ? d->snap_lo : k > d->snap_hi ? d->snap_hi : k));
    }
}

static void rebuild(Ddq *d) {
    d->tab.nc = table_at(d, d->m, d->tab.coarse);
    if (d->snap > 0) snap_values(d, d->tab.coarse, d->tab.nc);
    int B = 1 << d->m;
    const float *q = d->fine->data;
    for (int j = 0; j + 1 < d->tab.nc; j++)
        d->tab.thresh[j] = d->cfg->fine_forward && !(d->snap > 0) ? 0.5f * (q[(j + 1) * B - 1] + q[(j + 1) * B])
                                            : 0.5f * (d->tab.coarse[j] + d->tab.coarse[j + 1]);
    d->tab.thresh[d->tab.nc - 1] = d->tab.thresh[d->tab.nc] = INFINITY;  // sentinels for bin_fast
    // the level sets one bit finer (children) and coarser (pairs): the frontier signals' tables
    DdqNear *up = &d->near_up, *dn = &d->near_down;
    up->n = d->m > 0 ? table_at(d, d->m - 1, up->v) : 0;
    dn->n = d->m < DDQ_K ? table_at(d, d->m + 1, dn->v) : 0;
    if (up->n) {
        const float *lower = up->v;
        int H = B / 2;  // half a block: the children's boundary
        for (int j = 0; j < d->tab.nc; j++) {
            d->tab.child_lo[j] = lower[2 * j], d->tab.child_hi[j] = lower[2 * j + 1];
            d->tab.child_mid[j] = d->cfg->fine_forward ? 0.5f * (q[j * B + H - 1] + q[j * B + H])
                                                   : 0.5f * (lower[2 * j] + lower[2 * j + 1]);
        }
    }
    if (dn->n)
        for (int j = 0; j < d->tab.nc; j++) d->tab.pair[j] = dn->v[j / 2];
    d->tab.m = d->m;
    ddq_tables_finish(&d->tab);
    if (d->cfg->merge_centered) {
        near_tables(up, d->tab.thresh, d->tab.nc);
        near_tables(dn, d->tab.thresh, d->tab.nc);
    }
}

/* Keep coarse values at least gap apart, moving whole blocks away from the pinned one. */
static void project(Ddq *d) {
    int B = 1 << d->m, nc = DDQ_FINE >> d->m;
    float v[DDQ_FINE], gap = d->cfg->gap * d->step, *q = d->fine->data;
    table_at(d, d->m, v);
    int anchor = d->cfg->pin_zero && d->zero_index >= 0 ? d->zero_index >> d->m : 0;
    // A block moves to its target as target + (q − v): the offsets within the block are kept, and a
    // block far off (diverging levels at 1e8) lands exactly, where q + (target − v) would cancel.
    for (int j = anchor + 1; j < nc; j++)
        if (v[j] < v[j - 1] + gap) {
            float target = v[j - 1] + gap;
            for (int i = j * B; i < (j + 1) * B; i++) q[i] = target + (q[i] - v[j]);
            v[j] = target;
        }
    for (int j = anchor - 1; j >= 0; j--)
        if (v[j] > v[j + 1] - gap) {
            float target = v[j + 1] - gap;
            for (int i = j * B; i < (j + 1) * B; i++) q[i] = target + (q[i] - v[j]);
            v[j] = target;
        }
}

/* ------------------------------------------------------------------ initialisation */
/* --ddq_init_centered: a fine grid of step f whose 2^b blocks at b = init_bits have means exactly
 * (j − j0)·B·f, B = 2^(8−b) fine levels per block, j0 = 2^(b−1) signed (LSQ's Q_N) and 0 unsigned:
 * the pinned block's fine levels sit symmetrically about 0, q_i = f·(i − i0) + c with
 * i0 = j0·B + B/2 and c = f·(B/2 − (B−1)/2) (half a fine step when B is even, 0 when B = 1), so
 * block j's mean is f·((j − j0)·B + (B−1)/2 − B/2) + c = (j − j0)·B·f. By default the fine level
 * at 0 is the first of its block, and at low bits the pinned block's neighbours sit unevenly
 * about it: at 2 bits, {−1.5, −0.5, 0, +1.5}·s signed and {0, 1.5, 2.5, 3.5}·s unsigned. */
static void init_centered_grid(Ddq *d, float f) {
    int b = d->cfg->init_bits, B = 1 << (DDQ_K - b), j0 = d->base.is_signed ? 1 << (b - 1) : 0;
    int i0 = j0 * B + B / 2;
    float c = f * (float)(B / 2 - (B - 1) / 2.0);
    for (int i = 0; i < DDQ_FINE; i++) d->fine->data[i] = f * (float)(i - i0) + c;
    d->zero_index = i0, d->step = f;
}

/* Uniform fine grid from lo to hi with one level exactly 0 (when lo < 0 < hi, or lo = 0);
 * --ddq_init_centered: the same fine step, on LSQ's level set at init_bits (above). */
static void init_grid(Ddq *d, float lo, float hi) {
    if (!(hi > lo)) hi = lo + 1e-3f;
    float *q = d->fine->data;
    if (d->cfg->init_centered && !d->base.pinned) {
        init_centered_grid(d, d->base.is_signed ? (hi - lo) / (DDQ_FINE - 1) : hi / (DDQ_FINE - 1));
    } else if (d->base.is_signed) {
        float step = (hi - lo) / (DDQ_FINE - 1);
        int i0 = (int)lroundf(-lo / step);
        if (i0 < 0) i0 = 0;
        if (i0 > DDQ_FINE - 1) i0 = DDQ_FINE - 1;
        for (int i = 0; i < DDQ_FINE; i++) q[i] = step * (float)(i - i0);
        d->zero_index = i0, d->step = step;
    } else {
        float step = hi / (DDQ_FINE - 1);
        for (int i = 0; i < DDQ_FINE; i++) q[i] = step * (float)i;
        d->zero_index = 0, d->step = step;
    }
    if (!d->cfg->pin_zero) d->zero_index = -1;
    memset(d->vel, 0, sizeof d->vel);
    memset(d->vel2, 0, sizeof d->vel2);
    d->base.calibrated = true;
    rebuild(d);
}

/* --ddq_init_lsq: the fine step whose merged blocks at init_bits are LSQ's initial step for data of
 * mean magnitude mean_abs, 2·mean|x|/sqrt(Q_P) (Esser et al.), Q_P = 2^(b−1) − 1 signed, 2^b − 1 not. */
static float lsq_fine_step(const Ddq *d, double mean_abs) {
    int b = d->cfg->init_bits;
    double qp = d->base.is_signed ? (double)(1 << (b - 1)) - 1 : (double)(1 << b) - 1;
    return (float)(2 * mean_abs / sqrt(qp > 1 ? qp : 1) / (double)(1 << (DDQ_K - b)));
}

static bool init_like_lsq(const Ddq *d) { return d->cfg->init_lsq && !d->base.pinned; }

static void init_from_weights(Ddq *d, const Tensor *w) {
    float mx = 0;
    if (d->scale) {  // per channel: the levels see w / max|w_c|, so the range is ±1
        for (int c = 0; c < d->channels; c++) d->scale[c] = 0;
        for (size_t i = 0; i < w->numel; i++) {
            float *s = &d->scale[i % (size_t)d->channels];
            *s = fmaxf(*s, fabsf(w->data[i]));
        }
        for (int c = 0; c < d->channels; c++)
            if (d->scale[c] == 0) d->scale[c] = 1e-3f;
        mx = 1;
    }
    for (size_t i = 0; i < w->numel && !d->scale; i++) mx = fmaxf(mx, fabsf(w->data[i]));
    if (mx == 0) mx = 1e-3f;
    if (init_like_lsq(d)) {  // the levels see w (or w / max|w_c|): LSQ's step for their mean magnitude
        double sum = 0;
        for (size_t i = 0; i < w->numel; i++) sum += fabsf(w->data[i]) / (d->scale ? d->scale[i % (size_t)d->channels] : 1.0f);
        float f = lsq_fine_step(d, w->numel ? sum / (double)w->numel : 0);
        init_grid(d, -128 * f, 127 * f);
        return;
    }
    // d·(i − 128): 128 steps below zero, 127 above, the largest |w| on the short side
    init_grid(d, -mx * 128.0f / 127.0f, mx);
}

static void ddq_observe(Quantizer *q, const Tensor *x) { qsamples_add(&((Ddq *)q)->samples, x); }

static void ddq_finish_calibration(Quantizer *q) {
    Ddq *d = (Ddq *)q;
    if (d->samples.n == 0) return;  // weights initialise on their first forward
    if (init_like_lsq(d)) {
        double sum = 0;
        for (size_t i = 0; i < d->samples.n; i++) sum += fabsf(d->samples.v[i]);
        float f = lsq_fine_step(d, sum / (double)d->samples.n);
        if (q->is_signed) init_grid(d, -128 * f, 127 * f);
        else init_grid(d, 0, 255 * f);
        qsamples_free(&d->samples);
        return;
    }
    float p = d->cfg->percentile, lo = quant_percentile(d->samples.v, d->samples.n, 100 - p);
    float hi = quant_percentile(d->samples.v, d->samples.n, p);
    if (!q->is_signed) lo = 0;
    else if (lo >= 0) lo = -(hi - lo) / 255.0f;  // signed data that happened to be >= 0: keep 0 inside
    init_grid(d, lo, hi);
    qsamples_free(&d->samples);
}

/* ------------------------------------------------------------------ forward / backward */
typedef struct DdqSaved {
    Ddq *d;
    uint8_t *bins;  // (numel) bin of each element
} DdqSaved;

typedef struct Toggled Toggled;

typedef struct DdqJob {
    Ddq *d;
    const float *x, *dy;
    float *y, *dx;
    uint8_t *bins;
    size_t n;
    int chunks;
    const Toggled *toggled;  // product-rule variant: outputs with one gate flipped
    bool signals;            // gate signals wanted (joint phase)
    bool dx_overwrite;       // dx is fresh: store instead of add
    bool levels;             // the level gradients' histogram is wanted
    bool ref;                // reference kernels (the tape's choice when the forward ran)
} DdqJob;

static size_t chunk_begin(const DdqJob *j, int c) { return j->n * (size_t)c / (size_t)j->chunks; }

static void forward_task(void *ctx, int begin, int end, int tid) {
    const DdqJob *j = ctx;
    const Ddq *d = j->d;
    size_t e0 = chunk_begin(j, begin), e1 = chunk_begin(j, end);
    const float *restrict x = j->x;
    float *restrict y = j->y;
    uint8_t *restrict bins = j->bins;
    if (d->scale) {  // per-channel weights: y = s_c·Q(x / s_c)
        for (size_t e = e0; e < e1; e++) {
            float s = d->scale[e % (size_t)d->channels];
            int b = ddq_bin_of(d->tab.thresh, d->tab.nc, x[e] / s);
            bins[e] = (uint8_t)b;
            y[e] = s * d->tab.coarse[b];
        }
        return;
    }
    ddq_forward_kernel(&d->tab, j->ref, x, y, bins, e0, e1);
}

/* Per-thread accumulators: h (the level gradients' histogram), Σx and count (α), Σ dy·x inside the
 * range (--ddq_esser_grad), nc each; the
 * K product-rule signals; the two frontier signals c_down and c_up. The generic loop keeps them
 * in COPIES interleaved copies (element e adds to copy e % COPIES), so runs of elements in the
 * same bin do not wait on each other's read-modify-write. */
enum { ACC_H, ACC_SX, ACC_N, ACC_DYX, ACC_TABLES };
#define ACC_GATES (ACC_TABLES * DDQ_FINE)
#define ACC_DOWN (ACC_GATES + DDQ_K)
#define ACC_UP (ACC_DOWN + 1)
#define ACC_DOUBLES (ACC_UP + 1)
#define COPIES 4

static double *accumulators(int tid) {
    return (double *)(void *)threads_scratch(tid, THREADS_SLOT_DDQ_SUMS, 2 * COPIES * ACC_DOUBLES);
}

/* Product rule: v[k][i] = output for fine index i with gate k flipped (K tables). */
struct Toggled {
    float v[DDQ_K][DDQ_FINE];
};

/* One element's share of the frontier signals (x in the levels' units); --ddq_merge_centered: the
 * exact ones, from the level set after the flip (ddq_kernels.h). */
static inline void element_signals(const Ddq *d, float x, float g, int b, double *acc) {
    if (d->cfg->merge_centered) ddq_centred_signals(&d->tab, &d->near_down, &d->near_up, x, g, b, &acc[ACC_DOWN], &acc[ACC_UP]);
    else ddq_element_signals(&d->tab, x, g, b, &acc[ACC_DOWN], &acc[ACC_UP]);
}

/* The plain loop: every variant (per-channel scales, α, product rule), any number of levels. */
static void backward_generic(const DdqJob *j, size_t e0, size_t e1, double *all) {
    const Ddq *d = j->d;
    float lo = d->tab.coarse[0], hi = d->tab.coarse[d->tab.nc - 1];
    const Toggled *tg = j->toggled;
    bool alpha = d->cfg->alpha != 0, esser = d->cfg->esser_grad;
    if (d->scale) {  // per-channel weights: the same estimators on x / s_c, level gradients times s_c
        for (size_t e = e0; e < e1; e++) {
            double *acc = all + (e % COPIES) * ACC_DOUBLES;
            float s = d->scale[e % (size_t)d->channels], x = j->x[e] / s, g = j->dy[e];
            int b = j->bins[e];
            float pass = (x >= lo && x <= hi) ? g : 0.0f;
            if (j->dx) j->dx[e] = j->dx_overwrite ? pass : j->dx[e] + pass;
            acc[ACC_H * DDQ_FINE + b] += g * s;
            if (j->signals) element_signals(d, x, g * s, b, acc);
            if (alpha) acc[ACC_SX * DDQ_FINE + b] += x, acc[ACC_N * DDQ_FINE + b] += 1;
            if (esser && x >= lo && x <= hi) acc[ACC_DYX * DDQ_FINE + b] += (double)(g * s) * x;
        }
        return;  // (the product-rule variant is per tensor only)
    }
    // Blocks of BLOCK elements: the vectorised straight-through loop first, then the histogram
    // loop over the same block while its x and dy are still in L1.
    enum { BLOCK = 1024 };
    for (size_t b0 = e0; b0 < e1; b0 += BLOCK) {
        size_t b1 = b0 + BLOCK < e1 ? b0 + BLOCK : e1;
        if (j->dx) {  // clipped straight-through
            const float *restrict x = j->x, *restrict dy = j->dy;
            float *restrict dx = j->dx;
            if (j->dx_overwrite)
                for (size_t e = b0; e < b1; e++) dx[e] = (x[e] >= lo && x[e] <= hi) ? dy[e] : 0.0f;
            else
                for (size_t e = b0; e < b1; e++) dx[e] += (x[e] >= lo && x[e] <= hi) ? dy[e] : 0.0f;
        }
        for (size_t e = b0; e < b1; e++) {
            double *acc = all + (e % COPIES) * ACC_DOUBLES;
            float x = j->x[e], g = j->dy[e];
            int b = j->bins[e];
            acc[ACC_H * DDQ_FINE + b] += g;
            if (j->signals) element_signals(d, x, g, b, acc);
            if (alpha) acc[ACC_SX * DDQ_FINE + b] += x, acc[ACC_N * DDQ_FINE + b] += 1;
            if (esser && x >= lo && x <= hi) acc[ACC_DYX * DDQ_FINE + b] += (double)g * x;
            if (tg) {  // the full 8-bit index: nearest fine level
                const float *q = d->fine->data;
                int l = 0, r = DDQ_FINE - 1;
                while (l < r) {
                    int mid = (l + r) >> 1;
                    if (x >= 0.5f * (q[mid] + q[mid + 1])) l = mid + 1;
                    else r = mid;
                }
                for (int k = 0; k < DDQ_K; k++) acc[ACC_GATES + k] += (double)g * (tg->v[k][l] - d->tab.coarse[b]);
            }
        }
    }
}

static void backward_task(void *ctx, int begin, int end, int tid) {
    const DdqJob *j = ctx;
    const Ddq *d = j->d;
    double *all = accumulators(tid);
    memset(all, 0, COPIES * ACC_DOUBLES * sizeof(double));
    size_t e0 = chunk_begin(j, begin), e1 = chunk_begin(j, end);
    DdqBackward a = {.x = j->x, .dy = j->dy, .bins = j->bins, .dx = j->dx, .dx_overwrite = j->dx_overwrite,
                     .h = j->levels ? all + ACC_H * DDQ_FINE : NULL, .sig = j->signals ? all + ACC_DOWN : NULL};
    if (d->cfg->merge_centered) a.near_down = &d->near_down, a.near_up = &d->near_up;
    bool plain = !d->scale && d->cfg->alpha == 0 && !d->cfg->esser_grad && !j->toggled;  // the default case: the kernels'
    if (!plain || !ddq_backward_kernel(&d->tab, j->ref, &a, e0, e1)) backward_generic(j, e0, e1, all);
    for (int c = 1; c < COPIES; c++)  // fold the copies into the first, in order
        for (int k = 0; k < ACC_DOUBLES; k++) all[k] += all[c * ACC_DOUBLES + k];
}

/* Output for fine index i under an arbitrary merged-bit set `mask` (bit k set = merged):
 * the mean of the fine levels that agree with i on every kept bit (pinned block: 0). */
static float value_under(const Ddq *d, int mask, int i) {
    const float *q = d->fine->data;
    if (d->cfg->pin_zero && d->zero_index >= 0 && ((i ^ d->zero_index) & ~mask & (DDQ_FINE - 1)) == 0) return 0;
    double s = 0;
    int n = 0;
    for (int k = 0; k < DDQ_FINE; k++)
        if (((k ^ i) & ~mask & (DDQ_FINE - 1)) == 0) s += q[k], n++;
    return (float)(s / n);
}

static void ddq_backward_op(Tape *t, TapeRecord *r) {
    const DdqSaved *s = r->saved;
    Ddq *d = s->d;
    Tensor *x = r->in[0], *fine = r->in[1];
    bool overwrite;
    float *dx = tape_grad_overwrite(t, x, &overwrite);
    bool signals = d->phase == DDQ_PHASE_JOINT && !d->base.pinned;
    bool levels = fine->requires_grad && fine->grad;
    DdqJob job = {.d = d, .x = x->data, .dy = r->out->grad, .dx = dx, .bins = s->bins, .n = x->numel,
                  .chunks = threads_count(), .signals = signals, .dx_overwrite = overwrite, .levels = levels,
                  .ref = r->ref};
    if (d->cfg->product_rule && signals) {  // tables of the K single-gate toggles around the current set
        Toggled *tg = arena_alloc(t->arena, sizeof *tg);
        int mask = (1 << d->m) - 1;
        for (int k = 0; k < DDQ_K; k++)
            for (int i = 0; i < DDQ_FINE; i++) tg->v[k][i] = value_under(d, mask ^ (1 << k), i);
        job.toggled = tg;
    }
    parallel_for(job.chunks, backward_task, &job);
    double tot[ACC_DOUBLES] = {0};
    for (int c = 0; c < job.chunks; c++) {  // combine in thread order
        if (!parallel_has_work(job.chunks, c)) continue;
        const double *a = accumulators(c);
        for (int k = 0; k < ACC_DOUBLES; k++) tot[k] += a[k];
    }
    const double *h = tot + ACC_H * DDQ_FINE, *sx = tot + ACC_SX * DDQ_FINE, *cnt = tot + ACC_N * DDQ_FINE,
                 *dyx = tot + ACC_DYX * DDQ_FINE;
    // Gate signals: first-order changes of L from merging one more / un-merging the last bit.
    if (signals) d->sig_down += tot[ACC_DOWN], d->sig_up += tot[ACC_UP];
    for (int k = 0; k < DDQ_K; k++) d->sig_gate[k] += tot[ACC_GATES + k];
    // Level gradients: h_j scaled per quantizer (+ α·∂mean((x_q − x)²)/∂v_j), given to every fine
    // level of block j so the block moves rigidly; the pinned block gets none.
    if (!levels) return;
    double scale = 1.0 / sqrt((double)d->base.elems * (double)(d->tab.nc - 1 > 0 ? d->tab.nc - 1 : 1));
    int B = 1 << d->m, pinned = d->cfg->pin_zero && d->zero_index >= 0 ? d->zero_index >> d->m : -1;
    double n = (double)x->numel;
    for (int j = 0; j < d->tab.nc; j++) {
        if (j == pinned) continue;
        double v = d->tab.coarse[j], g = h[j];
        // LSQ's in-bin term: inside the range, x_q − x moves with the level as a fixed fraction of
        // it, ∂x_q/∂v_j = (v_j − x)/v_j — on a uniform grid, LSQ's round(x/s) − x/s along v_j = k·s
        if (d->cfg->esser_grad && v != 0) g -= dyx[j] / v;
        g *= scale;
        if (d->cfg->alpha != 0) g += d->cfg->alpha * 2.0 / n * (cnt[j] * v - sx[j]);
        for (int i = j * B; i < (j + 1) * B; i++) fine->grad[i] += (float)g;
    }
}

static const TapeOp DDQ_OP = {"ddq_quantize", ddq_backward_op};

static Tensor *ddq_forward(Quantizer *q, Tape *t, Tensor *x) {
    Ddq *d = (Ddq *)q;
    if (!q->calibrated) {
        if (q->role != QROLE_WEIGHT)
            DQ_FATAL_HINT("run the calibration batches before training (quant_calibrate)",
                          "%s: activation quantizer used before calibration", q->name);
        init_from_weights(d, x);
    }
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    uint8_t *bins = arena_alloc(t->arena, x->numel);
    DdqJob job = {.d = d, .x = x->data, .y = y->data, .bins = bins, .n = x->numel, .chunks = threads_count(),
                  .ref = t->ref_kernels};
    parallel_for(job.chunks, forward_task, &job);
    TapeRecord *r = tape_push(t, &DDQ_OP, y, 2, (Tensor *[]){x, d->fine});
    if (r) {
        DdqSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (DdqSaved){.d = d, .bins = bins};
        r->saved = s;
    }
    return y;
}

/* ------------------------------------------------------------------ per-step updates */
static void update_levels(Ddq *d, float lr) {
    float rate = (d->base.role == QROLE_WEIGHT ? d->cfg->lr_levels_w : d->cfg->lr_levels_a) * lr;
    if (rate == 0) return;  // nothing moves (tests observe signals this way with the levels still)
    float *q = d->fine->data, *g = d->fine->grad;
    if (d->cfg->adam) {  // Adam (β 0.9, 0.999), no weight decay
        d->adam_t++;
        double c1 = 1 - pow(0.9, (double)d->adam_t), c2 = 1 - pow(0.999, (double)d->adam_t);
        for (int i = 0; i < DDQ_FINE; i++) {
            d->vel[i] = 0.9f * d->vel[i] + 0.1f * g[i];
            d->vel2[i] = 0.999f * d->vel2[i] + 0.001f * g[i] * g[i];
            q[i] -= rate * (float)(d->vel[i] / c1 / (sqrt(d->vel2[i] / c2) + 1e-8));
        }
    } else {
        for (int i = 0; i < DDQ_FINE; i++) {
            d->vel[i] = d->cfg->momentum * d->vel[i] + g[i];
            q[i] -= rate * d->vel[i];
        }
    }
    if (d->zero_index >= 0) q[d->zero_index] = 0;  // the pin is exact
    project(d);
}

static void set_merged(Ddq *d, int m) {
    d->m = m;
    project(d);  // the new blocks must be ordered too
    rebuild(d);
}

static void frontier_gates(Ddq *d, float lr_gate) {
    double a = d->cfg->ema;
    int m_max = DDQ_K - d->cfg->b_min;
    d->ema_down = a * d->ema_down + (1 - a) * d->sig_down;
    d->ema_up = a * d->ema_up + (1 - a) * d->sig_up;
    d->ema_down_pos = a * d->ema_down_pos + (1 - a) * fmax(d->sig_down, 0);
    d->ema_up_neg = a * d->ema_up_neg + (1 - a) * fmax(-d->sig_up, 0);
    // Positive gate = merged. Merge when the price of a bit outweighs the smoothed cost of
    // merging; un-merge when the smoothed gain of un-merging outweighs the price.
    if (d->m < m_max) d->gate_merge -= lr_gate * (float)(d->ema_down - d->price);
    if (d->m > 0) d->gate_unmerge += lr_gate * (float)(d->ema_up + d->price);
    d->gate_merge = fminf(1, fmaxf(-1, d->gate_merge));
    d->gate_unmerge = fminf(1, fmaxf(-1, d->gate_unmerge));
    if (d->m < m_max && d->gate_merge > 0 && !d->no_merge) {
        set_merged(d, d->m + 1);
        d->ema_up = -d->ema_down, d->ema_down = 0;  // the bit just merged is now the one to un-merge
        d->gate_merge = -0.5f, d->gate_unmerge = 0.5f, d->flips++;
    } else if (d->m > 0 && d->gate_unmerge < 0 && !d->no_unmerge) {
        set_merged(d, d->m - 1);
        d->ema_down = -d->ema_up, d->ema_up = 0;
        d->gate_merge = -0.5f, d->gate_unmerge = 0.5f, d->flips++;
    }
}

/* Variant: every gate gets its own signal and update; the quantizer uses the leading run of
 * merged gates from the least significant bit (nested, so monotone), which can jump bits. */
static void product_rule_gates(Ddq *d, float lr_gate) {
    double a = d->cfg->ema;
    for (int k = 0; k < DDQ_K; k++) {
        d->ema_gate[k] = a * d->ema_gate[k] + (1 - a) * d->sig_gate[k];
        bool merged = k < d->m;
        // toggling a merged gate un-merges it: its signal is the change from un-merging
        d->gate[k] += merged ? lr_gate * (float)(d->ema_gate[k] + d->price)
                             : -lr_gate * (float)(d->ema_gate[k] - d->price);
        d->gate[k] = fminf(1, fmaxf(-1, d->gate[k]));
        d->sig_gate[k] = 0;
    }
    int m = 0;
    while (m < DDQ_K - d->cfg->b_min && d->gate[m] > 0) m++;
    if (m != d->m) {
        d->flips++;
        set_merged(d, m);
    }
}

static void ddq_step(Quantizer *q, float lr) {
    Ddq *d = (Ddq *)q;
    if (!q->calibrated) return;
    if (d->phase != DDQ_PHASE_WARMUP && d->fine->grad) update_levels(d, lr);
    if (d->phase == DDQ_PHASE_JOINT && !q->pinned) {
        float lr_gate = d->cfg->lr_gate * (d->cfg->gate_anneal ? lr : 1);  // lr: relative to the peak
        if (d->cfg->product_rule) product_rule_gates(d, lr_gate);
        else frontier_gates(d, lr_gate);
    }
    d->sig_down = d->sig_up = 0;
    rebuild(d);
}

/* ------------------------------------------------------------------ read-outs and state */
static int ddq_bits(const Quantizer *q) { return DDQ_K - ((const Ddq *)q)->m; }

static int ddq_levels(const Quantizer *q, float *out) {
    const Ddq *d = (const Ddq *)q;
    memcpy(out, d->tab.coarse, (size_t)d->tab.nc * sizeof(float));
    return d->tab.nc;
}

static int ddq_grid(const Quantizer *q, float *levels, float *thresh) {
    const Ddq *d = (const Ddq *)q;
    if (!q->calibrated || d->scale) return 0;
    memcpy(levels, d->tab.coarse, (size_t)d->tab.nc * sizeof(float));
    memcpy(thresh, d->tab.thresh, (size_t)(d->tab.nc - 1) * sizeof(float));
    return d->tab.nc;
}

static void ddq_describe(const Quantizer *q, char *buf, size_t size) {
    const Ddq *d = (const Ddq *)q;
    snprintf(buf, size, "ddq %d bits, levels [%.4g, %.4g], %d bit changes%s", DDQ_K - d->m, d->tab.coarse[0],
             d->tab.coarse[d->tab.nc - 1], d->flips, d->snap > 0 ? ", on the integer grid" : "");
}

#define DDQ_STATE_VERSION 2  // 2: the snap grid (1 had none)

static void ddq_save(const Quantizer *q, QBytes *b) {
    const Ddq *d = (const Ddq *)q;
    int head[5] = {DDQ_STATE_VERSION, d->m, d->zero_index, d->flips, q->calibrated};
    qbytes_put(b, head, sizeof head);
    float f[4] = {d->gate_merge, d->gate_unmerge, d->price, d->step};
    qbytes_put(b, f, sizeof f);
    double e[4] = {d->ema_down, d->ema_up, d->ema_down_pos, d->ema_up_neg};
    qbytes_put(b, e, sizeof e);
    qbytes_put(b, d->vel, sizeof d->vel);
    qbytes_put(b, d->vel2, sizeof d->vel2);
    qbytes_put(b, &d->adam_t, sizeof d->adam_t);
    qbytes_put(b, d->gate, sizeof d->gate);
    qbytes_put(b, d->ema_gate, sizeof d->ema_gate);
    if (d->scale) qbytes_put(b, d->scale, (size_t)d->channels * sizeof(float));
    int sk[2] = {d->snap_lo, d->snap_hi};
    qbytes_put(b, &d->snap, sizeof d->snap);
    qbytes_put(b, sk, sizeof sk);
}

static bool all_finite_f(const float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] >= lo && x[i] <= hi)) return false;  // NaN fails too
    return true;
}

static bool all_finite_d(const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* Everything is read into locals and checked before the quantizer changes. */
static bool ddq_load(Quantizer *q, QBytes *b, char *err, size_t es) {
    Ddq *d = (Ddq *)q;
    int head[5];
    float f[4], vel[DDQ_FINE], vel2[DDQ_FINE], gate[DDQ_K];
    double e[4], ema_gate[DDQ_K];
    long long adam_t;
    float *scale = d->scale ? dq_malloc((size_t)d->channels * sizeof(float)) : NULL;
    bool ok = qbytes_get(b, head, sizeof head) && qbytes_get(b, f, sizeof f) && qbytes_get(b, e, sizeof e) &&
              qbytes_get(b, vel, sizeof vel) && qbytes_get(b, vel2, sizeof vel2) && qbytes_get(b, &adam_t, sizeof adam_t) &&
              qbytes_get(b, gate, sizeof gate) && qbytes_get(b, ema_gate, sizeof ema_gate) &&
              (!scale || qbytes_get(b, scale, (size_t)d->channels * sizeof(float)));
    float snap = 0;
    int sk[2] = {0, 0};
    if (ok && head[0] >= 2) ok = qbytes_get(b, &snap, sizeof snap) && qbytes_get(b, sk, sizeof sk);
    const char *bad = !ok ? "truncated"
                    : head[0] != 1 && head[0] != DDQ_STATE_VERSION ? "unknown version"
                    : !(snap >= 0 && snap < 1e30f) || (snap > 0 && (sk[0] > 0 || sk[1] < 0 || (long long)sk[1] - sk[0] > 255)) ? "bad snap grid"
                    : head[1] < 0 || head[1] > (q->pinned ? 0 : DDQ_K - d->cfg->b_min) ? "merged bits out of range"
                    : head[2] < -1 || head[2] >= DDQ_FINE ? "zero index out of range"
                    : head[3] < 0 ? "negative bit-change count"
                    : head[4] != 0 && head[4] != 1 ? "calibration flag not 0 or 1"
                    : !all_finite_f(f, 2, -1, 1) || !all_finite_f(f + 2, 1, -1e30f, 1e30f) || !all_finite_f(f + 3, 1, 0, 1e30f)
                        ? "gates, price or step out of range"
                    : head[4] && !(f[3] > 0) ? "step is zero"
                    : !all_finite_d(e, 4) || !all_finite_d(ema_gate, DDQ_K) ? "non-finite gate signals"
                    : !all_finite_f(vel, DDQ_FINE, -1e30f, 1e30f) || !all_finite_f(vel2, DDQ_FINE, 0, 1e30f) ? "non-finite level momentum"
                    : adam_t < 0 || adam_t > (1LL << 50) ? "Adam step out of range"
                    : !all_finite_f(gate, DDQ_K, -1, 1) ? "product-rule gates out of range"
                    : scale && !all_finite_f(scale, (size_t)d->channels, 1e-30f, 1e30f) ? "channel scales out of range"
                    : NULL;
    const float *fine = d->fine->data;  // the slab is loaded before the quantizers' state
    for (int i = 0; !bad && head[4] && i < DDQ_FINE; i++)
        if (!isfinite(fine[i]) || fabsf(fine[i]) > 1e30f) bad = "levels not finite";
    // --ddq_init_centered's pinned block sits symmetrically about 0, so its fine level at the pin is
    // half a fine step off 0 (when a block holds an even number of them) until a level update pins it
    float off = d->cfg->init_centered ? 0.5f * f[3] * (1 + 1e-5f) : 0;
    if (!bad && head[4] && head[2] >= 0 && !(fabsf(fine[head[2]]) <= off)) bad = "the pinned level is not 0";
    if (bad) {
        dq_free(scale);
        snprintf(err, es, "%s: bad DDQ state: %s", q->name, bad);
        return false;
    }
    d->m = head[1], d->zero_index = head[2], d->flips = head[3], q->calibrated = head[4] != 0;
    d->gate_merge = f[0], d->gate_unmerge = f[1], d->price = f[2], d->step = f[3];
    d->ema_down = e[0], d->ema_up = e[1], d->ema_down_pos = e[2], d->ema_up_neg = e[3];
    memcpy(d->vel, vel, sizeof vel);
    memcpy(d->vel2, vel2, sizeof vel2);
    d->adam_t = adam_t;
    memcpy(d->gate, gate, sizeof gate);
    memcpy(d->ema_gate, ema_gate, sizeof ema_gate);
    if (scale) memcpy(d->scale, scale, (size_t)d->channels * sizeof(float));
    dq_free(scale);
    d->snap = snap, d->snap_lo = sk[0], d->snap_hi = sk[1];
    if (q->calibrated) rebuild(d);
    return true;
}

static void ddq_free(Quantizer *q) {
    qsamples_free(&((Ddq *)q)->samples);
    ddq_tables_free(&((Ddq *)q)->tab);
    dq_free(((Ddq *)q)->scale);
    dq_free(q);
}

static const QuantizerOps DDQ_OPS = {.kind = "ddq", .forward = ddq_forward, .observe = ddq_observe,
                                     .finish_calibration = ddq_finish_calibration, .step = ddq_step, .bits = ddq_bits,
                                     .levels = ddq_levels, .grid = ddq_grid, .describe = ddq_describe, .save = ddq_save,
                                     .load = ddq_load, .free = ddq_free};

Quantizer *ddq_new(ParamSlab *slab, const char *name, QuantRole role, bool is_signed, bool pinned,
                   long long elems, int channels, const DdqConfig *cfg) {
    if (cfg->b_min < 1 || cfg->b_min > DDQ_K) DQ_FATAL("ddq: minimum bits %d must be in 1..%d", cfg->b_min, DDQ_K);
    if (cfg->init_bits < cfg->b_min || cfg->init_bits > DDQ_K)
        DQ_FATAL("ddq: initial bits %d must be in %d..%d", cfg->init_bits, cfg->b_min, DDQ_K);
    if (cfg->merge_centered && (!cfg->pin_zero || cfg->fine_forward || cfg->product_rule))
        DQ_FATAL("ddq: centred merging needs the pinned zero, nearest-value forward and frontier gates");
    Ddq *d = dq_calloc(1, sizeof *d);
    quantizer_init_base(&d->base, &DDQ_OPS, name, role, is_signed, pinned, elems);
    d->cfg = cfg;
    char pname[96];
    snprintf(pname, sizeof pname, "%s.levels", name);
    d->fine = slab_add(slab, pname, 1, (const int[]){DDQ_FINE}, PARAM_EXTERNAL | PARAM_NO_DECAY);
    d->m = pinned ? 0 : DDQ_K - cfg->init_bits;
    d->channels = role == QROLE_WEIGHT && channels > 1 ? channels : 1;
    if (d->channels > 1) d->scale = dq_calloc((size_t)d->channels, sizeof(float));
    d->gate_merge = -0.5f, d->gate_unmerge = 0.5f;
    for (int k = 0; k < DDQ_K; k++) d->gate[k] = k < d->m ? 0.5f : -0.5f;
    d->zero_index = -1;
    d->phase = DDQ_PHASE_JOINT;
    return &d->base;
}

/* ------------------------------------------------------------------ controls */
DdqState ddq_state(const Quantizer *q) {
    const Ddq *d = (const Ddq *)q;
    DQ_CHECK(ddq_is(q));
    return (DdqState){.bits = DDQ_K - d->m, .merged = d->m, .n_coarse = d->tab.nc, .coarse = d->tab.coarse,
                      .fine = d->fine->data, .ema_down = d->ema_down, .ema_up = d->ema_up,
                      .ema_down_pos = d->ema_down_pos, .ema_up_neg = d->ema_up_neg, .sig_down = d->sig_down,
                      .sig_up = d->sig_up, .gate_merge = d->gate_merge, .gate_unmerge = d->gate_unmerge,
                      .flips = d->flips, .price = d->price, .phase = d->phase};
}

void ddq_set_price(Quantizer *q, float price) { ((Ddq *)q)->price = price; }

void ddq_hold_flips(Quantizer *q, bool no_merge, bool no_unmerge) {
    Ddq *d = (Ddq *)q;
    d->no_merge = no_merge, d->no_unmerge = no_unmerge;
}

void ddq_set_phase(Quantizer *q, DdqPhase phase) {
    DQ_CHECK(ddq_is(q) && phase >= DDQ_PHASE_WARMUP && phase <= DDQ_PHASE_FROZEN);
    Ddq *d = (Ddq *)q;
    d->phase = phase;
    if (phase == DDQ_PHASE_FROZEN && d->cfg->snap_grid && q->calibrated) ddq_snap(q);
}

void ddq_snap(Quantizer *q) {
    Ddq *d = (Ddq *)q;
    DQ_CHECK(ddq_is(q) && q->calibrated);
    if (d->snap > 0) return;
    float v[DDQ_FINE];
    int n = table_at(d, d->m, v);
    double lo = fmin(v[0], 0), hi = fmax(v[n - 1], 0);
    if (q->role == QROLE_WEIGHT) {  // int8, zero point 0
        d->snap = (float)fmax(-lo / 128, hi / 127), d->snap_lo = -128, d->snap_hi = 127;
    } else {  // 256 codes around 0
        d->snap = (float)((hi - lo) / 255);
        d->snap_lo = (int)lround(lo / d->snap), d->snap_hi = d->snap_lo + 255;
    }
    if (!(d->snap > 0)) d->snap = d->step, d->snap_lo = -128, d->snap_hi = 127;  // a degenerate range
    rebuild(d);
}

float ddq_snap_step(const Quantizer *q) { return ((const Ddq *)q)->snap; }

void ddq_set_merged(Quantizer *q, int m) {
    Ddq *d = (Ddq *)q;
    DQ_CHECK(m >= 0 && m <= DDQ_K);
    if (d->base.calibrated) set_merged(d, m);
    else d->m = m;
}

void ddq_set_fine(Quantizer *q, const float *fine, int zero_index) {
    Ddq *d = (Ddq *)q;
    memcpy(d->fine->data, fine, sizeof(float) * DDQ_FINE);
    d->zero_index = d->cfg->pin_zero ? zero_index : -1;
    d->step = fabsf(fine[1] - fine[0]);
    d->base.calibrated = true;
    rebuild(d);
}
