/* checkpoint.c — section container, slab table, validation. */
#include "checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"
#include "core/fileio.h"

static const char MAGIC[8] = {'D', 'D', 'Q', 'C', 'K', 'P', 'T', 0};

void ckpt_init(Checkpoint *c) { memset(c, 0, sizeof *c); }

void ckpt_free(Checkpoint *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) dq_free(c->sections[i].owned);
    dq_free(c->file);
    memset(c, 0, sizeof *c);
}

void ckpt_add(Checkpoint *c, const char *tag, const void *data, size_t size) {
    DQ_CHECK(strlen(tag) == 4);
    if (c->n == CHECKPOINT_MAX_SECTIONS) DQ_FATAL("checkpoint: more than %d sections", CHECKPOINT_MAX_SECTIONS);
    CkptSection *s = &c->sections[c->n++];
    memcpy(s->tag, tag, 5);
    s->owned = dq_malloc(size ? size : 1);
    if (size) memcpy(s->owned, data, size);
    s->data = s->owned;
    s->size = size;
}

/* ------------------------------------------------------------------ little byte writer/reader */
typedef struct Bytes {
    uint8_t *p;
    size_t len, cap;
} Bytes;

static void put(Bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = dq_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(Bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(Bytes *b, uint64_t v) { put(b, &v, 8); }

typedef struct Reader {
    const uint8_t *p;
    size_t len, pos;
    const char *path, *what;
} Reader;

static void take(Reader *r, void *dst, size_t n) {
    if (r->len - r->pos < n) DQ_FATAL_FILE(r->path, "section %s is truncated", r->what);
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
}

static uint32_t take_u32(Reader *r) {
    uint32_t v;
    take(r, &v, 4);
    return v;
}

static uint64_t take_u64(Reader *r) {
    uint64_t v;
    take(r, &v, 8);
    return v;
}

/* ------------------------------------------------------------------ slab table */
void ckpt_add_slab(Checkpoint *c, const ParamSlab *s) {
    DQ_CHECK(s->finalized);
    Bytes b = {0};
    put_u32(&b, (uint32_t)s->n_params);
    for (int i = 0; i < s->n_params; i++) {
        const Param *p = &s->params[i];
        uint32_t len = (uint32_t)strlen(p->name);
        put_u32(&b, len);
        put(&b, p->name, len);
        put_u32(&b, (uint32_t)p->tensor->ndim);
        for (int d = 0; d < p->tensor->ndim; d++) put_u32(&b, (uint32_t)p->tensor->shape[d]);
        put_u32(&b, p->flags);
    }
    put_u64(&b, s->numel);
    put(&b, s->data, s->numel * sizeof(float));
    ckpt_add(c, "PARM", b.p, b.len);
    dq_free(b.p);
}

/* One entry of the PARM table: its name and shape (as a view without data). */
typedef struct TableEntry {
    char name[256];
    Tensor shape;
} TableEntry;

static void take_entry(Reader *r, uint32_t i, TableEntry *e) {
    memset(e->name, 0, sizeof e->name);
    uint32_t len = take_u32(r);
    if (len >= sizeof e->name) DQ_FATAL_FILE(r->path, "parameter %u has a %u-byte name", i, len);
    take(r, e->name, len);
    uint32_t ndim = take_u32(r);
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) DQ_FATAL_FILE(r->path, "parameter '%s' has %u dims", e->name, ndim);
    int shape[TENSOR_MAX_DIMS] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < ndim; d++) {
        shape[d] = (int)take_u32(r);
        if (shape[d] < 1) DQ_FATAL_FILE(r->path, "parameter '%s' has a dimension of size %d", e->name, shape[d]);
    }
    (void)take_u32(r);  // flags: informational
    e->shape = tensor_view(NULL, (int)ndim, shape);
}

/* Reads the table and returns, for every saved parameter in order, the model parameter it goes
 * to: by position (by_name false: names and shapes must match one to one) or by name. */
static const Param **match_table(const Checkpoint *c, Reader *r, const ParamSlab *s, bool by_name, uint32_t *count) {
    uint32_t n = take_u32(r);
    if (!by_name && n != (uint32_t)s->n_params)
        DQ_FATAL_FILE(c->path, "%u parameters in the file, %d in the model", n, s->n_params);
    if (n > (1u << 20)) DQ_FATAL_FILE(c->path, "%u parameters", n);
    const Param **dst = dq_calloc(n ? n : 1, sizeof *dst);
    for (uint32_t i = 0; i < n; i++) {
        TableEntry e;
        take_entry(r, i, &e);
        const Param *p = by_name ? slab_find(s, e.name) : &s->params[i];
        char a[64], b[64];
        if (!p) DQ_FATAL_FILE(c->path, "parameter '%s' of the file is not in the model", e.name);
        if (strcmp(e.name, p->name) != 0 || !tensor_same_shape(&e.shape, p->tensor))
            DQ_FATAL_FILE(c->path, "parameter %u is '%s' %s in the file but '%s' %s in the model", i, e.name,
                          tensor_shape_str(&e.shape, a, sizeof a), p->name, tensor_shape_str(p->tensor, b, sizeof b));
        dst[i] = p;
    }
    *count = n;
    return dst;
}

static int read_values(const Checkpoint *c, ParamSlab *s, bool by_name) {
    const CkptSection *sec = ckpt_require(c, "PARM", 0);
    Reader r = {sec->data, sec->size, 0, c->path, "PARM"};
    uint32_t n;
    const Param **dst = match_table(c, &r, s, by_name, &n);
    uint64_t numel = take_u64(&r);
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) total += dst[i]->tensor->numel;
    if (numel != total) DQ_FATAL_FILE(c->path, "%llu values in the file for parameters of %zu", (unsigned long long)numel, total);
    for (uint32_t i = 0; i < n; i++) take(&r, dst[i]->tensor->data, dst[i]->tensor->numel * sizeof(float));
    if (r.pos != r.len) DQ_FATAL_FILE(c->path, "section PARM has %zu unexpected trailing bytes", r.len - r.pos);
    dq_free(dst);
    return (int)n;
}

void ckpt_read_slab(const Checkpoint *c, ParamSlab *s) { read_values(c, s, false); }

int ckpt_read_slab_by_name(const Checkpoint *c, ParamSlab *s) { return read_values(c, s, true); }

int ckpt_epochs(const Checkpoint *c) {
    const CkptSection *m = ckpt_find(c, "META");
    if (!m || m->size < sizeof(uint64_t)) return 0;
    uint64_t e;
    memcpy(&e, m->data, sizeof e);
    return (int)e;
}

/* ------------------------------------------------------------------ file */
void ckpt_save(const Checkpoint *c, const char *path) {
    Bytes b = {0};
    put(&b, MAGIC, 8);
    put_u32(&b, CHECKPOINT_VERSION);
    put_u32(&b, (uint32_t)c->n);
    for (int i = 0; i < c->n; i++) {
        put(&b, c->sections[i].tag, 4);
        put_u64(&b, c->sections[i].size);
        put(&b, c->sections[i].data, c->sections[i].size);
    }
    put_u32(&b, crc32_update(0, b.p, b.len));
    char err[512];
    const void *parts[1] = {b.p};
    size_t sizes[1] = {b.len};
    bool ok = fileio_write_atomic(path, parts, sizes, 1, err, sizeof err);
    dq_free(b.p);
    if (!ok) DQ_FATAL_FILE(path, "cannot write checkpoint: %s", err);
}

bool ckpt_load(Checkpoint *c, const char *path) {
    ckpt_init(c);
    if (!fileio_exists(path)) return false;
    char err[256];
    size_t n;
    uint8_t *f = fileio_read_all(path, &n, err, sizeof err);
    if (!f) DQ_FATAL_FILE(path, "%s", err);
    c->file = f;
    snprintf(c->path, sizeof c->path, "%s", path);
    if (n < 20 || memcmp(f, MAGIC, 8) != 0) DQ_FATAL_FILE(path, "not a checkpoint (bad magic or too short: %zu bytes)", n);
    uint32_t crc;
    memcpy(&crc, f + n - 4, 4);
    if (crc != crc32_update(0, f, n - 4))
        DQ_FATAL_FILE(path, "checksum mismatch: the file is corrupt or truncated");
    Reader r = {f, n - 4, 8, path, "header"};
    uint32_t version = take_u32(&r), count = take_u32(&r);
    if (version != CHECKPOINT_VERSION) DQ_FATAL_FILE(path, "checkpoint version %u, this build reads %d", version, CHECKPOINT_VERSION);
    if (count > CHECKPOINT_MAX_SECTIONS) DQ_FATAL_FILE(path, "%u sections, at most %d", count, CHECKPOINT_MAX_SECTIONS);
    for (uint32_t i = 0; i < count; i++) {
        CkptSection *s = &c->sections[c->n++];
        take(&r, s->tag, 4);
        s->tag[4] = 0;
        uint64_t size = take_u64(&r);
        if (size > r.len - r.pos) DQ_FATAL_FILE(path, "section '%s' claims %llu bytes, %zu remain", s->tag, (unsigned long long)size, r.len - r.pos);
        s->data = f + r.pos;
        s->size = (size_t)size;
        r.pos += (size_t)size;
    }
    if (r.pos != r.len) DQ_FATAL_FILE(path, "%zu bytes after the last section", r.len - r.pos);
    return true;
}

const CkptSection *ckpt_find(const Checkpoint *c, const char *tag) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->sections[i].tag, tag)) return &c->sections[i];
    return NULL;
}

const CkptSection *ckpt_require(const Checkpoint *c, const char *tag, size_t size) {
    const CkptSection *s = ckpt_find(c, tag);
    if (!s) DQ_FATAL_FILE(c->path, "no section '%s' in the checkpoint", tag);
    if (size && s->size != size) DQ_FATAL_FILE(c->path, "section '%s' has %zu bytes, expected %zu", tag, s->size, size);
    return s;
}
