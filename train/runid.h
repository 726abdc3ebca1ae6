/* runid.h — a run's identity: the options that decide what it computes, as "key=value" lines.
 *
 * A checkpoint stores its run's identity (section "OPTS"); --resume compares it with the new
 * command line and refuses any difference, naming each one, so a resumed run is always the run
 * that was started. Options have roles (core/options.h): those that define the run must match;
 * execution options (threads) must match while training goes on, and may differ when the
 * checkpoint holds a finished run that is only being reused; incidental ones (out_dir, progress,
 * …) are not part of the identity. More epochs may be allowed explicitly (--extend).
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

typedef struct RunIdCheck {
    bool continues;     // training goes on from the checkpoint (execution options must match too)
    bool extend;        // more epochs than the checkpoint's run are allowed
} RunIdCheck;

/* Compare the stored identity with the current one (both as runid_append writes them).
 * False with every difference, "--lr=0.2 (checkpoint: 0.1), …", in diff. */
bool runid_compare(const char *stored, size_t stored_len, const char *current, const RunIdCheck *how, char *diff,
                   size_t diff_size);

#endif
