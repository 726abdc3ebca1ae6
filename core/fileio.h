/* fileio.h — whole-file reads and crash-safe writes.
 *
 * fileio_read_all returns the file's bytes (dq_free them) or NULL with errno-based text in err.
 * fileio_write_atomic writes to "<path>.tmp", flushes it to disk, then renames it over path:
 * a reader (or a crash) sees either the old file or the new one, never a torn one.
 */
#ifndef DQ_FILEIO_H
#define DQ_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint8_t *fileio_read_all(const char *path, size_t *size, char *err, size_t err_size);
bool fileio_exists(const char *path);
/* Writes n_parts buffers in order. Returns false with a reason in err. */
bool fileio_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                         int n_parts, char *err, size_t err_size);
/* mkdir -p for a directory path; false with a reason in err. */
bool fileio_make_dirs(const char *dir, char *err, size_t err_size);
/* mkdir -p, then create and remove a file in it: false with a reason when files cannot be
 * written there (a directory that exists read-only, a path whose name is taken by a file). */
bool fileio_check_writable_dir(const char *dir, char *err, size_t err_size);

#endif
