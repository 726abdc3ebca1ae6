/* checkpoint.c — section container, slab table, validation. */
#include "checkpoint.h"

#include <stdarg.h>
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

/* A cursor over a section; the first short read records "section … is truncated" in err and
 * makes every later read fail too, so a parser checks `ok` once per record. */
typedef struct Reader {
    const uint8_t *p;
    size_t len, pos;
    const char *what;
    bool ok;
    char *err;
    size_t err_size;
} Reader;

static bool take(Reader *r, void *dst, size_t n) {
    if (!r->ok) return false;
    if (r->len - r->pos < n) {
        r->ok = false;
        return dq_fail(r->err, r->err_size, "section %s is truncated", r->what);
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}

static uint32_t take_u32(Reader *r) {
    uint32_t v = 0;
    take(r, &v, 4);
    return v;
}

static uint64_t take_u64(Reader *r) {
    uint64_t v = 0;
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

/* One entry of the PARM table: its name and shape. */
typedef struct TableEntry {
    char name[256];
    int ndim, shape[TENSOR_MAX_DIMS];
    size_t numel;
} TableEntry;

static bool take_entry(Reader *r, uint32_t i, TableEntry *e) {
    memset(e, 0, sizeof *e);
    uint32_t len = take_u32(r);
    if (!r->ok) return false;
    if (len >= sizeof e->name) return dq_fail(r->err, r->err_size, "parameter %u has a %u-byte name", i, len);
    if (!take(r, e->name, len)) return false;
    if (memchr(e->name, 0, len)) return dq_fail(r->err, r->err_size, "parameter %u has a NUL in its name", i);
    uint32_t ndim = take_u32(r);
    if (!r->ok) return false;
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) return dq_fail(r->err, r->err_size, "parameter '%s' has %u dims", e->name, ndim);
    e->ndim = (int)ndim, e->numel = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        uint32_t v = take_u32(r);
        if (!r->ok) return false;
        if (v < 1 || v > (1u << 30)) return dq_fail(r->err, r->err_size, "parameter '%s' has a dimension of size %u", e->name, v);
        e->shape[d] = (int)v;
        if (e->numel > ((size_t)1 << 40) / v)  // more than 2^40 values: not a parameter of this framework
            return dq_fail(r->err, r->err_size, "parameter '%s' has more than 2^40 values", e->name);
        e->numel *= v;
    }
    (void)take_u32(r);  // flags: informational
    return r->ok;
}

static bool same_shape(const TableEntry *e, const Tensor *t) {
    if (e->ndim != t->ndim) return false;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] != t->shape[d]) return false;
    return true;
}

static void shape_str(const int *shape, int ndim, char *buf, size_t size) {
    size_t off = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && off < size; d++) off += (size_t)snprintf(buf + off, size - off, d ? ", %d" : "%d", shape[d]);
    if (off < size) snprintf(buf + off, size - off, ")");
}

bool ckpt_read_params(const Checkpoint *c, ParamSlab *s, bool by_name, int *copied, char *err, size_t es) {
    DQ_CHECK(s->finalized);
    const CkptSection *sec = NULL;
    if (!ckpt_section(c, "PARM", 0, &sec, err, es)) return false;
    Reader r = {.p = sec->data, .len = sec->size, .what = "PARM", .ok = true, .err = err, .err_size = es};
    uint32_t n = take_u32(&r);
    if (!r.ok) return false;
    if (!by_name && n != (uint32_t)s->n_params)
        return dq_fail(err, es, "%u parameters in the file, %d in the model", n, s->n_params);
    if (n > (uint32_t)s->n_params) return dq_fail(err, es, "%u parameters in the file, %d in the model", n, s->n_params);
    const Param **dst = dq_calloc(n ? n : 1, sizeof *dst);
    bool ok = true;
    size_t total = 0;
    for (uint32_t i = 0; i < n && ok; i++) {
        TableEntry e;
        if (!(ok = take_entry(&r, i, &e))) break;
        const Param *p = by_name ? slab_find(s, e.name) : &s->params[i];
        if (!p) {
            ok = dq_fail(err, es, "parameter '%s' of the file is not in the model", e.name);
            break;
        }
        for (uint32_t k = 0; k < i && ok; k++)
            if (dst[k] == p) ok = dq_fail(err, es, "parameter '%s' appears twice in the file", e.name);
        if (ok && (strcmp(e.name, p->name) != 0 || !same_shape(&e, p->tensor))) {
            char a[96], b[96];
            shape_str(e.shape, e.ndim, a, sizeof a);
            shape_str(p->tensor->shape, p->tensor->ndim, b, sizeof b);
            ok = dq_fail(err, es, "parameter %u is '%s' %s in the file but '%s' %s in the model", i, e.name, a, p->name, b);
        }
        dst[i] = p;
        total += p->tensor->numel;
    }
    uint64_t numel = 0;
    if (ok) numel = take_u64(&r), ok = r.ok;
    if (ok && numel != total) ok = dq_fail(err, es, "%llu values in the file for parameters of %zu", (unsigned long long)numel, total);
    if (ok && r.len - r.pos != total * sizeof(float))  // checked before anything is copied
        ok = dq_fail(err, es, "section PARM holds %zu bytes of values, the table promises %zu", r.len - r.pos, total * sizeof(float));
    for (uint32_t i = 0; i < n && ok; i++) take(&r, dst[i]->tensor->data, dst[i]->tensor->numel * sizeof(float));
    if (ok) *copied = (int)n;
    dq_free(dst);
    return ok;
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

bool ckpt_parse(Checkpoint *c, uint8_t *f, size_t n, const char *path, char *err, size_t es) {
    ckpt_init(c);
    c->file = f;
    snprintf(c->path, sizeof c->path, "%s", path);
    if (n < 20 || memcmp(f, MAGIC, 8) != 0) return dq_fail(err, es, "not a checkpoint (bad magic or too short: %zu bytes)", n);
    uint32_t crc;
    memcpy(&crc, f + n - 4, 4);
    if (crc != crc32_update(0, f, n - 4)) return dq_fail(err, es, "checksum mismatch: the file is corrupt or truncated");
    Reader r = {.p = f, .len = n - 4, .pos = 8, .what = "header", .ok = true, .err = err, .err_size = es};
    uint32_t version = take_u32(&r), count = take_u32(&r);
    if (!r.ok) return false;
    if (version != CHECKPOINT_VERSION) return dq_fail(err, es, "checkpoint version %u, this build reads %d", version, CHECKPOINT_VERSION);
    if (count > CHECKPOINT_MAX_SECTIONS) return dq_fail(err, es, "%u sections, at most %d", count, CHECKPOINT_MAX_SECTIONS);
    for (uint32_t i = 0; i < count; i++) {
        CkptSection *s = &c->sections[c->n];
        if (!take(&r, s->tag, 4)) return false;
        s->tag[4] = 0;
        for (int k = 0; k < 4; k++)
            if (s->tag[k] < 'A' || s->tag[k] > 'Z') return dq_fail(err, es, "section %u has a malformed tag", i);
        if (ckpt_find(c, s->tag)) return dq_fail(err, es, "section '%s' appears twice", s->tag);
        uint64_t size = take_u64(&r);
        if (!r.ok) return false;
        if (size > r.len - r.pos)
            return dq_fail(err, es, "section '%s' claims %llu bytes, %zu remain", s->tag, (unsigned long long)size, r.len - r.pos);
        s->data = f + r.pos;
        s->size = (size_t)size;
        r.pos += (size_t)size;
        c->n++;
    }
    if (r.pos != r.len) return dq_fail(err, es, "%zu bytes after the last section", r.len - r.pos);
    return true;
}

const CkptSection *ckpt_find(const Checkpoint *c, const char *tag) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->sections[i].tag, tag)) return &c->sections[i];
    return NULL;
}

bool ckpt_section(const Checkpoint *c, const char *tag, size_t size, const CkptSection **out, char *err, size_t es) {
    const CkptSection *s = ckpt_find(c, tag);
    if (!s) return dq_fail(err, es, "no section '%s' in the checkpoint", tag);
    if (size && s->size != size) return dq_fail(err, es, "section '%s' has %zu bytes, expected %zu", tag, s->size, size);
    *out = s;
    return true;
}

/* ------------------------------------------------------------------ CLI wrappers */
bool ckpt_load(Checkpoint *c, const char *path) {
    ckpt_init(c);
    if (!fileio_exists(path)) return false;
    char err[512];
    size_t n;
    uint8_t *f = fileio_read_all(path, &n, err, sizeof err);
    if (!f) DQ_FATAL_FILE(path, "%s", err);
    if (!ckpt_parse(c, f, n, path, err, sizeof err)) {
        ckpt_free(c);
        DQ_FATAL_FILE(path, "%s", err);
    }
    return true;
}

const CkptSection *ckpt_require(const Checkpoint *c, const char *tag, size_t size) {
    const CkptSection *s = NULL;
    char err[256];
    if (!ckpt_section(c, tag, size, &s, err, sizeof err)) DQ_FATAL_FILE(c->path, "%s", err);
    return s;
}

void ckpt_read_slab(const Checkpoint *c, ParamSlab *slab) {
    char err[512];
    int n;
    if (!ckpt_read_params(c, slab, false, &n, err, sizeof err)) DQ_FATAL_FILE(c->path, "%s", err);
}

int ckpt_read_slab_by_name(const Checkpoint *c, ParamSlab *slab) {
    char err[512];
    int n;
    if (!ckpt_read_params(c, slab, true, &n, err, sizeof err)) DQ_FATAL_FILE(c->path, "%s", err);
    return n;
}
