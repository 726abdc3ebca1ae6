/* ddpg.h — the deep deterministic policy gradient agent HAQ searches with (Lillicrap et al. 2016;
 * Wang et al., HAQ, CVPR 2019), small enough to read in one sitting.
 *
 *   actor   μ(s) ∈ (0, 1): state → hidden → hidden → sigmoid
 *   critic  Q(s, a): [state, action] → hidden → hidden → linear
 *   both    ReLU hidden layers, Adam, double precision (the networks are tiny; the search's cost
 *           is the episodes' fine-tuning, not the agent)
 *
 * One update on a minibatch of transitions (s, a, r):
 *   critic  minimise mean (Q(s, a) − r)²
 *   actor   maximise mean Q(s, μ(s)) through the critic: ∂/∂θ = ∂Q/∂a · ∂μ/∂θ
 * HAQ rewards a whole episode (one bit choice per layer) once, at its end, and gives every
 * transition that reward less a moving-average baseline; with the discount of 1 HAQ uses, the
 * critic then estimates the episode's reward from one layer's state and action. We fit that
 * directly (no bootstrapped target, hence no target networks) — see docs/allocators.md.
 */
#ifndef DQ_DDPG_H
#define DQ_DDPG_H

#include <stdbool.h>

#include "core/rng.h"

#define MLP_MAX_LAYERS 3

/* A fully connected network in double; sizes[0] inputs, sizes[n_layers] outputs. */
typedef struct Mlp {
    int n_layers;
    int sizes[MLP_MAX_LAYERS + 1];
    bool sigmoid_out;                  // the last layer's activation: sigmoid, else none
    double *w[MLP_MAX_LAYERS];         // (sizes[l+1] × sizes[l]) row-major
    double *b[MLP_MAX_LAYERS];
    double *gw[MLP_MAX_LAYERS], *gb[MLP_MAX_LAYERS];
    double *mw[MLP_MAX_LAYERS], *vw[MLP_MAX_LAYERS], *mb[MLP_MAX_LAYERS], *vb[MLP_MAX_LAYERS];  // Adam
    int adam_t;
    int cap;                           // batch rows the activation cache holds
    double *act[MLP_MAX_LAYERS + 1];   // (cap × sizes[l]) each layer's output, act[0] the input
} Mlp;

void mlp_init(Mlp *m, int n_layers, const int *sizes, bool sigmoid_out, Rng *rng);
void mlp_free(Mlp *m);
/* Forward n rows of x (n × sizes[0]); returns the outputs (n × sizes[n_layers]), valid until the
 * next call (the cache grows to n rows as needed). */
const double *mlp_forward(Mlp *m, const double *x, int n);
/* After mlp_forward of the same rows: adds the parameters' gradients of Σ dout·out to gw/gb and,
 * if dx is not NULL, writes the inputs' gradient (n × sizes[0]). */
void mlp_backward(Mlp *m, const double *dout, int n, double *dx);
void mlp_zero_grad(Mlp *m);
void mlp_adam(Mlp *m, double lr);

typedef struct DdpgConfig {
    int state_dim;
    int hidden;            // units per hidden layer
    double lr_actor, lr_critic;
    int batch;             // transitions per update
    int capacity;          // replay memory
} DdpgConfig;

typedef struct Ddpg {
    DdpgConfig cfg;
    Mlp actor, critic;
    double *s, *a, *r;     // replay memory (capacity rows), filled ring-wise
    int count, next;
    Rng rng;
} Ddpg;

void ddpg_init(Ddpg *d, const DdpgConfig *cfg, uint64_t seed);
void ddpg_free(Ddpg *d);
/* μ(s) for one state. */
double ddpg_act(Ddpg *d, const double *s);
/* Remembers one transition. */
void ddpg_observe(Ddpg *d, const double *s, double a, double r);
/* The critic's gradient of mean (Q(s, a) − r)² over n rows of [s, a] into critic.gw/gb; returns
 * the loss. */
double ddpg_critic_grad(Ddpg *d, const double *sa, const double *r, int n);
/* The actor's gradient of −mean Q(s, μ(s)) over n states into actor.gw/gb (overwriting the
 * critic's gradients); returns mean Q. */
double ddpg_actor_grad(Ddpg *d, const double *states, int n);
/* One critic and one actor step on a random minibatch; returns the critic's loss (0 before the
 * memory holds a batch). */
double ddpg_update(Ddpg *d);

#endif
