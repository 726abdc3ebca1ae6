/* loader.c — shuffling, normalisation, augmentation, and a one-batch-ahead prefetch thread.
 *
 * Two batch slots. The worker fills slot b % 2 with batch b while the trainer consumes batch
 * b − 1 from the other slot. Everything random is drawn by the producer in batch order, so the
 * result does not depend on timing. Without prefetch the same producer code runs inline.
 */
#include "loader.h"

#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

typedef struct Slot {
    float *x;        // (B, H, W, C)
    int *labels;     // (B)
    int n, index;
    bool full;
} Slot;

struct Loader {
    const Dataset *d;
    LoaderConfig cfg;
    int examples, batches;
    int *order;           // example indices of the current epoch
    Rng aug;              // augmentation draws of the current epoch (producer side)
    Slot slot[2];
    int next_batch;       // consumer: next batch to hand out
    int produced;         // producer: next batch to make
    int epoch;            // -1 before the first epoch
    bool consumed_prev;   // the consumer holds slot (next_batch − 1) % 2
    // prefetch thread
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, quit;
    bool busy;            // the worker is making a batch outside the lock
    unsigned long job;    // incremented by every loader_start_epoch
};

/* One example's crop offsets and flip, drawn from the epoch's augmentation stream. */
static void draw_augmentation(Loader *l, int *dy, int *dx, bool *flip) {
    int pad = l->cfg.crop_pad;
    *dy = *dx = 0;
    *flip = false;
    if (pad > 0) {
        *dy = (int)rng_below(&l->aug, (uint32_t)(2 * pad + 1)) - pad;
        *dx = (int)rng_below(&l->aug, (uint32_t)(2 * pad + 1)) - pad;
    }
    if (l->cfg.hflip) *flip = rng_u32(&l->aug) & 1;
}

static void make_batch(Loader *l, int b, Slot *s) {
    const Dataset *d = l->d;
    int B = l->cfg.batch_size, first = b * B;
    int n = l->examples - first < B ? l->examples - first : B;
    int H = d->h, W = d->w, C = d->c;
    float scale[3], shift[3];
    for (int c = 0; c < C; c++) scale[c] = 1.0f / (255.0f * d->std[c]), shift[c] = -d->mean[c] / d->std[c];
    for (int i = 0; i < n; i++) {
        int ex = l->order[first + i];
        const uint8_t *img = d->images + (size_t)ex * H * W * C;
        int dy, dx;
        bool flip;
        draw_augmentation(l, &dy, &dx, &flip);
        float *out = s->x + (size_t)i * H * W * C;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int sy = y + dy, sx = flip ? W - 1 - (x + dx) : x + dx;
                bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
                const uint8_t *px = inside ? img + ((size_t)sy * W + sx) * C : NULL;  // no pointer outside the image
                for (int c = 0; c < C; c++)
                    out[((size_t)y * W + x) * C + c] = (inside ? px[c] : 0) * scale[c] + shift[c];
            }
        s->labels[i] = d->labels[ex];
    }
    s->n = n;
    s->index = b;
}

static void *worker(void *arg) {
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->produced >= l->batches || l->slot[l->produced % 2].full))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        int b = l->produced;
        unsigned long job = l->job;
        Slot *s = &l->slot[b % 2];
        l->busy = true;
        pthread_mutex_unlock(&l->mu);
        make_batch(l, b, s);  // the slot is ours: it is not full and the consumer waits for it
        pthread_mutex_lock(&l->mu);
        l->busy = false;
        if (job == l->job) {  // not cancelled by a new epoch meanwhile
            s->full = true;
            l->produced++;
        }
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

Loader *loader_new(const Dataset *d, const LoaderConfig *cfg) {
    if (cfg->batch_size < 1) DQ_FATAL("loader: batch size %d must be >= 1", cfg->batch_size);
    if (cfg->crop_pad < 0 || cfg->crop_pad > d->h / 2)
        DQ_FATAL("loader: crop padding %d must be in 0..%d", cfg->crop_pad, d->h / 2);
    if (cfg->subset < 0) DQ_FATAL("loader: subset %d must be >= 0", cfg->subset);
    if (d->c > 3) DQ_FATAL("loader: %d channels, at most 3 supported", d->c);
    int examples = cfg->subset > 0 && cfg->subset < d->n ? cfg->subset : d->n;
    int batches = cfg->drop_last ? examples / cfg->batch_size : (examples + cfg->batch_size - 1) / cfg->batch_size;
    if (batches == 0) DQ_FATAL("loader: %d examples make no full batch of %d", examples, cfg->batch_size);
    Loader *l = dq_calloc(1, sizeof *l);
    l->d = d;
    l->cfg = *cfg;
    l->examples = cfg->drop_last ? batches * cfg->batch_size : examples;
    l->batches = batches;
    l->order = dq_malloc((size_t)(cfg->subset > 0 && cfg->subset < d->n ? cfg->subset : d->n) * sizeof(int));
    size_t img = (size_t)cfg->batch_size * d->h * d->w * d->c;
    for (int i = 0; i < 2; i++) {
        l->slot[i].x = dq_aligned_alloc(64, img * sizeof(float));
        l->slot[i].labels = dq_malloc((size_t)cfg->batch_size * sizeof(int));
    }
    l->epoch = -1;
    l->produced = l->batches;  // nothing to do until the first epoch starts
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (cfg->prefetch) {
        if (pthread_create(&l->thread, NULL, worker, l) != 0) DQ_FATAL("loader: cannot start the prefetch thread");
        l->running = true;
    }
    return l;
}

void loader_free(Loader *l) {
    if (!l) return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    for (int i = 0; i < 2; i++) {
        dq_free(l->slot[i].x);
        dq_free(l->slot[i].labels);
    }
    dq_free(l->order);
    dq_free(l);
}

void loader_start_epoch(Loader *l, int epoch) { loader_start_epoch_at(l, epoch, 0); }

void loader_start_epoch_at(Loader *l, int epoch, int batch) {
    if (epoch < 0 || batch < 0 || batch > l->batches)
        DQ_FATAL("loader: epoch %d, batch %d: the epoch has %d batches", epoch, batch, l->batches);
    pthread_mutex_lock(&l->mu);
    l->job++;                                        // a batch in the making is dropped …
    while (l->busy) pthread_cond_wait(&l->cv, &l->mu);  // … once the worker has put it down
    l->epoch = epoch;
    int n = l->cfg.subset > 0 && l->cfg.subset < l->d->n ? l->cfg.subset : l->d->n;
    for (int i = 0; i < n; i++) l->order[i] = i;
    Rng order;
    rng_seed(&order, l->cfg.seed, rng_stream(RNG_STREAM_SHUFFLE, (uint64_t)epoch));
    if (l->cfg.shuffle) rng_shuffle(&order, l->order, (size_t)n);
    rng_seed(&l->aug, l->cfg.seed, rng_stream(RNG_STREAM_AUGMENT, (uint64_t)epoch));
    for (long long i = 0; i < (long long)batch * l->cfg.batch_size && i < l->examples; i++) {
        int dy, dx;  // the skipped batches' draws: the stream is where the batches before left it
        bool flip;
        draw_augmentation(l, &dy, &dx, &flip);
    }
    l->slot[0].full = l->slot[1].full = false;
    l->next_batch = batch;
    l->produced = batch;
    l->consumed_prev = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

bool loader_next(Loader *l, Batch *b) {
    if (l->epoch < 0) DQ_FATAL("loader_next called before loader_start_epoch");
    pthread_mutex_lock(&l->mu);
    if (l->consumed_prev) {  // release the slot handed out last time
        l->slot[(l->next_batch - 1) % 2].full = false;
        l->consumed_prev = false;
        pthread_cond_broadcast(&l->cv);
    }
    if (l->next_batch >= l->batches) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    Slot *s = &l->slot[l->next_batch % 2];
    if (!l->running) {  // inline producer
        pthread_mutex_unlock(&l->mu);
        make_batch(l, l->next_batch, s);
        l->produced++;
        pthread_mutex_lock(&l->mu);
        s->full = true;
    }
    while (!s->full) pthread_cond_wait(&l->cv, &l->mu);
    l->next_batch++;
    l->consumed_prev = true;
    pthread_mutex_unlock(&l->mu);
    b->n = s->n;
    b->index = s->index;
    b->labels = s->labels;
    b->x = tensor_view(s->x, 4, (const int[]){s->n, l->d->h, l->d->w, l->d->c});
    return true;
}

int loader_batches(const Loader *l) { return l->batches; }
int loader_examples(const Loader *l) { return l->examples; }
