/* fileio.c — read a file whole; write one atomically (temporary file, fsync, rename). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

uint8_t *fileio_read_all(const char *path, size_t *size, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = dq_malloc(cap);
    for (;;) {
        if (n == cap) buf = dq_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, err_size, "read error: %s", strerror(errno));
        dq_free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

bool fileio_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool fileio_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                         int n_parts, char *err, size_t err_size) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, err_size, "path too long");
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
        return false;
    }
    for (int i = 0; i < n_parts; i++) {
        const char *p = parts[i];
        size_t left = sizes[i];
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                snprintf(err, err_size, "write to %s failed: %s", tmp, strerror(errno));
                close(fd);
                unlink(tmp);
                return false;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, err_size, "flushing %s failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return false;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

bool fileio_check_writable_dir(const char *dir, char *err, size_t err_size) {
    if (!fileio_make_dirs(dir, err, err_size)) return false;
    char probe[4200];
    // the process id in the name: runs that share a directory (fine-tunes of one FP32 model) probe at once
    if (snprintf(probe, sizeof probe, "%s/.ddqc-write-test-%ld", dir, (long)getpid()) >= (int)sizeof probe) {
        snprintf(err, err_size, "path too long");
        return false;
    }
    const void *parts[1] = {""};
    size_t sizes[1] = {0};
    if (!fileio_write_atomic(probe, parts, sizes, 1, err, err_size)) return false;
    unlink(probe);
    return true;
}

bool fileio_make_dirs(const char *dir, char *err, size_t err_size) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        snprintf(err, err_size, "path too long");
        return false;
    }
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                snprintf(err, err_size, "cannot create directory %s: %s", buf, strerror(errno));
                return false;
            }
            *p = c;
        }
        if (c == 0) break;
    }
    return true;
}
