/* ompq.h — orthogonality-based bit allocation in the manner of OMPQ (Ma et al., AAAI 2023): a
 * layer whose features say something the other layers' do not is more important.
 *
 *   features   each quantized layer's output on one batch of n training images, flattened to
 *              X_l (n × d_l), through the FP32 network (evaluation mode);
 *   ORM(i, j)  the orthogonality metric between two layers, linear CKA of their features:
 *                  ⟨K̃_i, K̃_j⟩ / (‖K̃_i‖·‖K̃_j‖),  K̃ = H·X Xᵀ·H,  H = I − 11ᵀ/n
 *              (1 for features equal up to rotation and scale, 0 for uncorrelated ones);
 *   θ_l        = exp(−β·Σ_{j≠l} ORM(l, j)) over the unpinned layers: the importance;
 *   objective  the paper's linear program, maximise Σ_l c_l·b_l with c_l = mean_{j ≥ l} θ_j
 *              (a layer also counts for the layers after it), under Σ_l N_l·b_l ≤ budget. The
 *              paper solves the relaxation and rounds b (which can break the budget); we solve
 *              the integer program exactly (knapsack.h), bits 2 … 8 like the other allocators.
 */
#ifndef DQ_OMPQ_H
#define DQ_OMPQ_H

/* The centred Gram matrix of n feature rows of length d (row-major), into K (n × n, doubles:
 * X Xᵀ by the float GEMM, the centring in double); returns its Frobenius norm. */
double ompq_centred_gram(const float *x, int n, long long d, double *K);
/* ⟨K_i, K_j⟩ / (norm_i·norm_j) for centred Grams (0 when a norm is 0). */
double ompq_orm(const double *Ki, double norm_i, const double *Kj, double norm_j, int n);
/* θ_l = exp(−β·Σ_{j≠l} orm[l·L + j]) and c_l = mean_{j ≥ l} θ_j, for L layers. */
void ompq_importance(const double *orm, int L, double beta, double *theta, double *c);

#endif
