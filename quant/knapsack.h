/* knapsack.h — the exact bit allocation every mixed-precision allocator ends in (HAWQ-V3's
 * integer program, OMPQ's after rounding): choose bits b_l ∈ [b_min, b_max] for n layers to
 *
 *     minimise  Σ_l cost_l(b_l)     subject to   Σ_l size_l · b_l ≤ budget
 *
 * — a multiple-choice knapsack, solved exactly by dynamic programming over the budget in units of
 * gcd(size_l) (one byte of choice per layer and unit: layers × budget/gcd bytes).
 */
#ifndef DQ_KNAPSACK_H
#define DQ_KNAPSACK_H

#include <stdbool.h>
#include <stddef.h>

/* size: n sizes (> 0, e.g. weights per layer); cost: n rows of (b_max − b_min + 1) costs, row l
 * holding cost_l(b_min) … cost_l(b_max); budget in size·bits. Writes the bits to bits_out and
 * returns true; false with the reason in err when no allocation fits (budget < Σ size·b_min) or
 * the table would exceed max_table bytes. Ties go to the fewer bits, layer by layer from the last. */
bool knapsack_allocate(int n, const long long *size, int b_min, int b_max, const double *cost, long long budget,
                       size_t max_table, int *bits_out, char *err, size_t err_size);

#endif
