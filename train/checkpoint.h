/* checkpoint.h — binary checkpoints made of tagged sections, written atomically.
 *
 * Layout (little-endian):
 *     "DDQCKPT\0"  u32 version  u32 n_sections
 *     n_sections × { char tag[4]  u64 size  payload[size] }
 *     u32 CRC-32 of every byte before it
 * A file is checked whole (magic, version, sizes, CRC) before anything is used. Writers add
 * sections; readers look them up by tag, so new sections (quantizer state, run options) do not
 * break old files.
 *
 * The parameter section stores the slab with its table of names, shapes and flags; loading
 * it into a model checks that every name and shape matches and names the first that does not.
 *
 * Every reader has a non-exiting core (ckpt_parse, ckpt_read_params, ckpt_section) that returns
 * false with the reason in err; the ckpt_load / ckpt_read_slab* / ckpt_require wrappers turn
 * that into "<path>: error: …" and exit 1. A buffer a parse accepted can be trusted: the sizes
 * in it fit the file.
 */
#ifndef DQ_CHECKPOINT_H
#define DQ_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slab.h"

#define CHECKPOINT_VERSION 1
#define CHECKPOINT_MAX_SECTIONS 16

typedef struct CkptSection {
    char tag[5];          // 4 characters + NUL
    const uint8_t *data;  // payload (owned by the writer, or pointing into a loaded file)
    size_t size;
    uint8_t *owned;       // writer: a buffer to free with the checkpoint
} CkptSection;

typedef struct Checkpoint {
    CkptSection sections[CHECKPOINT_MAX_SECTIONS];
    int n;
    uint8_t *file;        // reader: the whole file
    char path[4096];      // reader: for error messages
} Checkpoint;

void ckpt_init(Checkpoint *c);
void ckpt_free(Checkpoint *c);
/* Writer: copy a payload in. */
void ckpt_add(Checkpoint *c, const char *tag, const void *data, size_t size);
/* Writer: the slab's table and values as section "PARM". */
void ckpt_add_slab(Checkpoint *c, const ParamSlab *slab);
/* Atomic write; fatal "<path>: error: …" on failure. */
void ckpt_save(const Checkpoint *c, const char *path);

/* Reader core: check the container in file[0..n) and index its sections. Takes ownership of
 * file (freed by ckpt_free, also on failure); path is only for messages. */
bool ckpt_parse(Checkpoint *c, uint8_t *file, size_t n, const char *path, char *err, size_t err_size);
/* Section by tag, or NULL. */
const CkptSection *ckpt_find(const Checkpoint *c, const char *tag);
/* Section by tag; false if missing or not exactly `size` bytes (size 0: any size). */
bool ckpt_section(const Checkpoint *c, const char *tag, size_t size, const CkptSection **out, char *err,
                  size_t err_size);
/* Copy "PARM" into a finalized slab: by position (names and shapes must match one to one) or by
 * name (a larger model, e.g. the quantized one, may have more; every saved parameter must exist
 * with the same shape). *copied = parameters copied. Nothing is written to the slab unless the
 * whole section is valid. */
bool ckpt_read_params(const Checkpoint *c, ParamSlab *slab, bool by_name, int *copied, char *err,
                      size_t err_size);

/* CLI wrappers. ckpt_load: false if the file does not exist; fatal if it exists but is malformed. */
bool ckpt_load(Checkpoint *c, const char *path);
const CkptSection *ckpt_require(const Checkpoint *c, const char *tag, size_t size);
void ckpt_read_slab(const Checkpoint *c, ParamSlab *slab);
int ckpt_read_slab_by_name(const Checkpoint *c, ParamSlab *slab);

#endif
