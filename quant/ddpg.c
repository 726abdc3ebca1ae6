/* ddpg.c — a small MLP with hand-written backpropagation, and the DDPG agent on it (see ddpg.h). */
#include "ddpg.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

/* ------------------------------------------------------------------ the MLP */
void mlp_init(Mlp *m, int n_layers, const int *sizes, bool sigmoid_out, Rng *rng) {
    DQ_CHECK(n_layers >= 1 && n_layers <= MLP_MAX_LAYERS);
    memset(m, 0, sizeof *m);
    m->n_layers = n_layers, m->sigmoid_out = sigmoid_out;
    memcpy(m->sizes, sizes, (size_t)(n_layers + 1) * sizeof *sizes);
    for (int l = 0; l < n_layers; l++) {
        size_t nw = (size_t)sizes[l + 1] * sizes[l], nb = (size_t)sizes[l + 1];
        m->w[l] = dq_malloc(nw * sizeof(double)), m->b[l] = dq_calloc(nb, sizeof(double));
        m->gw[l] = dq_calloc(nw, sizeof(double)), m->gb[l] = dq_calloc(nb, sizeof(double));
        m->mw[l] = dq_calloc(nw, sizeof(double)), m->vw[l] = dq_calloc(nw, sizeof(double));
        m->mb[l] = dq_calloc(nb, sizeof(double)), m->vb[l] = dq_calloc(nb, sizeof(double));
        // DDPG's initialisation: ±1/sqrt(fan-in), the output layer ±3e-3 (outputs start near the middle)
        double r = l == n_layers - 1 ? 3e-3 : 1 / sqrt((double)sizes[l]);
        for (size_t k = 0; k < nw; k++) m->w[l][k] = r * (2 * rng_uniform(rng) - 1);
    }
}

void mlp_free(Mlp *m) {
    for (int l = 0; l < m->n_layers; l++) {
        dq_free(m->w[l]), dq_free(m->b[l]), dq_free(m->gw[l]), dq_free(m->gb[l]);
        dq_free(m->mw[l]), dq_free(m->vw[l]), dq_free(m->mb[l]), dq_free(m->vb[l]);
    }
    for (int l = 0; l <= m->n_layers; l++) dq_free(m->act[l]);
    memset(m, 0, sizeof *m);
}

const double *mlp_forward(Mlp *m, const double *x, int n) {
    if (n > m->cap) {
        for (int l = 0; l <= m->n_layers; l++) dq_free(m->act[l]), m->act[l] = dq_malloc((size_t)n * m->sizes[l] * sizeof(double));
        m->cap = n;
    }
    memcpy(m->act[0], x, (size_t)n * m->sizes[0] * sizeof(double));
    for (int l = 0; l < m->n_layers; l++) {
        int in = m->sizes[l], out = m->sizes[l + 1];
        bool last = l == m->n_layers - 1;
        for (int r = 0; r < n; r++) {
            const double *xr = m->act[l] + (size_t)r * in;
            double *yr = m->act[l + 1] + (size_t)r * out;
            for (int o = 0; o < out; o++) {
                double z = m->b[l][o];
                for (int i = 0; i < in; i++) z += m->w[l][(size_t)o * in + i] * xr[i];
                yr[o] = !last ? (z > 0 ? z : 0) : m->sigmoid_out ? 1 / (1 + exp(-z)) : z;
            }
        }
    }
    return m->act[m->n_layers];
}

void mlp_backward(Mlp *m, const double *dout, int n, double *dx) {
    int widest = 0;
    for (int l = 0; l <= m->n_layers; l++) widest = m->sizes[l] > widest ? m->sizes[l] : widest;
    double *d = dq_malloc((size_t)n * widest * sizeof *d), *dprev = dq_malloc((size_t)n * widest * sizeof *dprev);
    int L = m->n_layers;
    for (int r = 0; r < n; r++)  // through the output activation
        for (int o = 0; o < m->sizes[L]; o++) {
            double y = m->act[L][(size_t)r * m->sizes[L] + o], g = dout[(size_t)r * m->sizes[L] + o];
            d[(size_t)r * m->sizes[L] + o] = m->sigmoid_out ? g * y * (1 - y) : g;
        }
    for (int l = L - 1; l >= 0; l--) {  // d: the gradient at layer l's pre-activation output
        int in = m->sizes[l], out = m->sizes[l + 1];
        for (int r = 0; r < n; r++) {
            const double *xr = m->act[l] + (size_t)r * in, *dr = d + (size_t)r * out;
            double *pr = dprev + (size_t)r * in;
            for (int i = 0; i < in; i++) pr[i] = 0;
            for (int o = 0; o < out; o++) {
                m->gb[l][o] += dr[o];
                for (int i = 0; i < in; i++) m->gw[l][(size_t)o * in + i] += dr[o] * xr[i], pr[i] += dr[o] * m->w[l][(size_t)o * in + i];
            }
            if (l > 0)  // through the ReLU that made layer l's input
                for (int i = 0; i < in; i++) pr[i] = xr[i] > 0 ? pr[i] : 0;
        }
        if (l == 0 && dx) memcpy(dx, dprev, (size_t)n * in * sizeof *dx);
        double *t = d;
        d = dprev, dprev = t;
    }
    dq_free(d), dq_free(dprev);
}

void mlp_zero_grad(Mlp *m) {
    for (int l = 0; l < m->n_layers; l++) {
        memset(m->gw[l], 0, (size_t)m->sizes[l + 1] * m->sizes[l] * sizeof(double));
        memset(m->gb[l], 0, (size_t)m->sizes[l + 1] * sizeof(double));
    }
}

static void adam(double *p, const double *g, double *mo, double *ve, size_t n, double lr, int t) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t);
    for (size_t k = 0; k < n; k++) {
        mo[k] = b1 * mo[k] + (1 - b1) * g[k], ve[k] = b2 * ve[k] + (1 - b2) * g[k] * g[k];
        p[k] -= lr * (mo[k] / c1) / (sqrt(ve[k] / c2) + eps);
    }
}

void mlp_adam(Mlp *m, double lr) {
    m->adam_t++;
    for (int l = 0; l < m->n_layers; l++) {
        adam(m->w[l], m->gw[l], m->mw[l], m->vw[l], (size_t)m->sizes[l + 1] * m->sizes[l], lr, m->adam_t);
        adam(m->b[l], m->gb[l], m->mb[l], m->vb[l], (size_t)m->sizes[l + 1], lr, m->adam_t);
    }
}

/* ------------------------------------------------------------------ the agent */
void ddpg_init(Ddpg *d, const DdpgConfig *cfg, uint64_t seed) {
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    rng_seed(&d->rng, seed, rng_stream(RNG_STREAM_ALLOC, 1000));
    int S = cfg->state_dim, H = cfg->hidden;
    mlp_init(&d->actor, 3, (const int[]){S, H, H, 1}, true, &d->rng);
    mlp_init(&d->critic, 3, (const int[]){S + 1, H, H, 1}, false, &d->rng);
    d->s = dq_malloc((size_t)cfg->capacity * S * sizeof *d->s);
    d->a = dq_malloc((size_t)cfg->capacity * sizeof *d->a), d->r = dq_malloc((size_t)cfg->capacity * sizeof *d->r);
}

void ddpg_free(Ddpg *d) {
    mlp_free(&d->actor), mlp_free(&d->critic);
    dq_free(d->s), dq_free(d->a), dq_free(d->r);
    memset(d, 0, sizeof *d);
}

double ddpg_act(Ddpg *d, const double *s) { return mlp_forward(&d->actor, s, 1)[0]; }

void ddpg_observe(Ddpg *d, const double *s, double a, double r) {
    int S = d->cfg.state_dim;
    memcpy(d->s + (size_t)d->next * S, s, (size_t)S * sizeof *s);
    d->a[d->next] = a, d->r[d->next] = r;
    d->next = (d->next + 1) % d->cfg.capacity;
    if (d->count < d->cfg.capacity) d->count++;
}

double ddpg_critic_grad(Ddpg *d, const double *sa, const double *r, int n) {
    const double *q = mlp_forward(&d->critic, sa, n);
    double *g = dq_malloc((size_t)n * sizeof *g), loss = 0;
    for (int k = 0; k < n; k++) loss += (q[k] - r[k]) * (q[k] - r[k]) / n, g[k] = 2 * (q[k] - r[k]) / n;
    mlp_zero_grad(&d->critic);
    mlp_backward(&d->critic, g, n, NULL);
    dq_free(g);
    return loss;
}

double ddpg_actor_grad(Ddpg *d, const double *states, int n) {
    int S = d->cfg.state_dim;
    double *sa = dq_malloc((size_t)n * (S + 1) * sizeof *sa), *dsa = dq_malloc((size_t)n * (S + 1) * sizeof *dsa);
    double *da = dq_malloc((size_t)n * sizeof *da), mean_q = 0;
    const double *mu = mlp_forward(&d->actor, states, n);
    for (int k = 0; k < n; k++) {
        memcpy(sa + (size_t)k * (S + 1), states + (size_t)k * S, (size_t)S * sizeof *sa);
        sa[(size_t)k * (S + 1) + S] = mu[k];
    }
    const double *q = mlp_forward(&d->critic, sa, n);
    for (int k = 0; k < n; k++) mean_q += q[k] / n, da[k] = -1.0 / n;  // minimise −mean Q
    mlp_zero_grad(&d->critic);  // (overwritten: the critic's step has been taken)
    mlp_backward(&d->critic, da, n, dsa);
    for (int k = 0; k < n; k++) da[k] = dsa[(size_t)k * (S + 1) + S];  // ∂(−mean Q)/∂a
    mlp_zero_grad(&d->actor);
    mlp_backward(&d->actor, da, n, NULL);  // (the actor's cache still holds these states)
    dq_free(sa), dq_free(dsa), dq_free(da);
    return mean_q;
}

double ddpg_update(Ddpg *d) {
    int B = d->cfg.batch, S = d->cfg.state_dim;
    if (d->count < B) return 0;
    double *sa = dq_malloc((size_t)B * (S + 1) * sizeof *sa), *r = dq_malloc((size_t)B * sizeof *r);
    double *states = dq_malloc((size_t)B * S * sizeof *states);
    for (int k = 0; k < B; k++) {  // the minibatch, with replacement
        int j = (int)rng_below(&d->rng, (uint32_t)d->count);
        memcpy(sa + (size_t)k * (S + 1), d->s + (size_t)j * S, (size_t)S * sizeof *sa);
        memcpy(states + (size_t)k * S, d->s + (size_t)j * S, (size_t)S * sizeof *states);
        sa[(size_t)k * (S + 1) + S] = d->a[j], r[k] = d->r[j];
    }
    double loss = ddpg_critic_grad(d, sa, r, B);
    mlp_adam(&d->critic, d->cfg.lr_critic);
    ddpg_actor_grad(d, states, B);
    mlp_adam(&d->actor, d->cfg.lr_actor);
    dq_free(sa), dq_free(r), dq_free(states);
    return loss;
}
