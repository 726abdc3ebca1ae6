/* hawq.c — Hutchinson traces by differences of gradients, and HAWQ's sensitivity (see hawq.h). */
#include "hawq.h"

#include <math.h>
#include <string.h>

#include "baselines.h"
#include "core/error.h"
#include "core/rng.h"

/* Sign of layer l in probe j of a group of P (a power of 2): entry (j, l) of Sylvester's Hadamard
 * matrix, (−1)^popcount(j & l). Its columns are orthogonal, so over a whole group every product of
 * two layers' signs sums to 0. */
static int hadamard_sign(int j, int l) {
    int odd = 0;
    for (unsigned b = (unsigned)(j & l); b; b &= b - 1) odd ^= 1;
    return odd ? -1 : 1;
}

int hawq_group_size(int n, bool layerwise) {
    int p = 1;
    while (layerwise && p < n) p *= 2;
    return p;
}

void hawq_traces(Tensor *const *w, int n, HawqGradFn grad, void *ctx, int draws, bool layerwise, float eps,
                 uint64_t seed, HawqTraces out) {
    DQ_CHECK(n > 0 && draws > 0 && eps > 0);
    int P = hawq_group_size(n, layerwise);
    size_t *off = dq_malloc((size_t)(n + 1) * sizeof *off);  // w[i] at off[i] in the flat buffers
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + w[i]->numel;
    size_t total = off[n];
    float *w0 = dq_malloc(total * sizeof *w0);     // the weights on entry
    float *r = dq_malloc(total * sizeof *r);       // the draw's signs
    float *gp = dq_malloc(total * sizeof *gp);     // g(w + εv)
    double *scale = dq_malloc((size_t)n * sizeof *scale), *sum = dq_calloc((size_t)n, sizeof *sum);
    double *sum2 = dq_calloc((size_t)n, sizeof *sum2), *group = dq_malloc((size_t)n * sizeof *group);
    for (int i = 0; i < n; i++) {
        size_t o = off[i];
        DQ_CHECK(w[i]->grad != NULL);
        memcpy(w0 + o, w[i]->data, w[i]->numel * sizeof(float));
        double ss = 0;
        for (size_t k = 0; k < w[i]->numel; k++) ss += (double)w0[o + k] * w0[o + k];
        scale[i] = sqrt(ss / (double)w[i]->numel);
        if (!(scale[i] > 0)) scale[i] = 1;  // an all-zero layer: an absolute step
    }
    for (int s = 0; s < draws; s++) {
        Rng rng;
        rng_seed(&rng, seed, rng_stream(RNG_STREAM_ALLOC, (uint64_t)s));
        for (size_t k = 0; k < total; k++) r[k] = (rng_u32(&rng) & 1) ? 1.0f : -1.0f;
        for (int i = 0; i < n; i++) group[i] = 0;
        for (int j = 0; j < P; j++) {  // probe j: layer i's signs are r_i times hadamard_sign(j, i)
            for (int sign = 1; sign >= -1; sign -= 2) {  // + then −
                for (int i = 0; i < n; i++) {
                    size_t o = off[i];
                    float step = (float)(sign * hadamard_sign(j, i) * eps * scale[i]);
                    for (size_t k = 0; k < w[i]->numel; k++) w[i]->data[k] = w0[o + k] + step * r[o + k];
                }
                grad(ctx);
                if (sign == 1)
                    for (int i = 0; i < n; i++) memcpy(gp + off[i], w[i]->grad, w[i]->numel * sizeof(float));
            }
            for (int i = 0; i < n; i++) {
                size_t o = off[i];
                // (h r_i)ᵀ (Hv)_i / rms_i with (Hv)_i = (g+ − g−)/(2ε), h = hadamard_sign(j, i)
                double d = 0;
                for (size_t k = 0; k < w[i]->numel; k++) d += (double)r[o + k] * ((double)gp[o + k] - w[i]->grad[k]);
                group[i] += hadamard_sign(j, i) * d / (2.0 * eps * scale[i]);
            }
        }
        for (int i = 0; i < n; i++) {
            double est = group[i] / P;
            sum[i] += est, sum2[i] += est * est;
        }
    }
    for (int i = 0; i < n; i++) {
        size_t o = off[i];
        memcpy(w[i]->data, w0 + o, w[i]->numel * sizeof(float));
        double m = sum[i] / draws;
        out.trace[i] = m;
        out.se[i] = draws > 1 ? sqrt(fmax(0, sum2[i] / draws - m * m) / (draws - 1)) : 0;
    }
    dq_free(off), dq_free(w0), dq_free(r), dq_free(gp), dq_free(scale), dq_free(sum), dq_free(sum2), dq_free(group);
}

void hawq_omega(const Tensor *w, int channels, double trace, int b_min, int b_max, double *omega) {
    for (int b = b_min; b <= b_max; b++)
        omega[b - b_min] = trace / (double)w->numel * baseline_lsq_init_error(w->data, w->numel, channels, b);
}
