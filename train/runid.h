/* runid.h — a run's identity: the options that decide what it computes, as "key=value" lines.
 *
 * A checkpoint stores its run's identity (section "OPTS"); --resume compares it with the new
 * command line and refuses any difference, naming each one, so a resumed run is always the run
 * that was started. Options have roles (core/options.h): those that define the run must match;
 * execution options (threads) must match while training goes on, and may differ when the
 * checkpoint holds a finished run that is only being reused; incidental ones (out_dir, progress,
 * …) are not part of the identity. More epochs may be allowed explicitly (--extend).
 *
 * An option that has no effect on the run (a DDQ option in an LSQ run) may be left out of the
 * identity; a key the stored identity has and the current one lacks is then not a difference, so
 * a default changed for one method never makes another method's checkpoints unresumable. The keys
 * that decide which options take effect (the method, the allocator) stay in and must match.
 */
#ifndef DQ_RUNID_H
#define DQ_RUNID_H

#include <stdbool.h>
#include <stddef.h>

#include "core/options.h"
#include "core/text.h"

/* Append "key=value\n" for every option of opts that defines the run or is an execution option,
 * skipping keys that start with one of the NULL-terminated prefixes in skip (may be NULL). */
void runid_append(Text *t, const Option *opts, int n, const char *const *skip);

/* Whether the option named key takes effect in the run described by ctx. */
typedef bool (*RunIdRelevant)(const char *key, const void *ctx);

/* runid_append for the options for which relevant(key, ctx) holds. */
void runid_append_relevant(Text *t, const Option *opts, int n, RunIdRelevant relevant, const void *ctx);

typedef struct RunIdCheck {
    bool continues;     // training goes on from the checkpoint (execution options must match too)
    bool extend;        // more epochs than the checkpoint's run are allowed
} RunIdCheck;

/* Compare the stored identity with the current one (both as runid_append writes them): keys only
 * the stored one has are ignored (see above). False with every difference,
 * "--lr=0.2 (checkpoint: 0.1), …", in diff. */
bool runid_compare(const char *stored, size_t stored_len, const char *current, const RunIdCheck *how, char *diff,
                   size_t diff_size);

#endif
