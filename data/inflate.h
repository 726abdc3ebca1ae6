/* inflate.h — DEFLATE (RFC 1951) and gzip (RFC 1952) decoding, from memory to memory.
 *
 * gzip_decompress accepts one or more concatenated gzip members and checks every header field,
 * the CRC-32 and the length of each member. Errors never abort: the function returns false and
 * writes a one-line reason ("truncated deflate stream", "CRC-32 mismatch", …) into err, so the
 * caller can name the file. Huffman codes are decoded with a 10-bit lookup table and a
 * bit-by-bit canonical decode for longer codes.
 */
#ifndef DQ_INFLATE_H
#define DQ_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if the buffer starts with the gzip magic bytes 1f 8b. */
bool gzip_is_gzip(const uint8_t *in, size_t n);
/* On success *out is a dq_malloc'ed buffer of *out_len bytes (free with dq_free). */
bool gzip_decompress(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len, char *err,
                     size_t err_size);
/* Raw DEFLATE stream; *consumed = bytes of input used. Output appended to a growing buffer. */
bool inflate_raw(const uint8_t *in, size_t n, size_t *consumed, uint8_t **out, size_t *out_len,
                 size_t *out_cap, char *err, size_t err_size);

#endif
