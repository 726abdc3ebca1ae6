/* protobuf.h — writing and reading the protocol-buffer wire format, by hand (for ONNX files).
 *
 * A message is a sequence of fields, each a key varint (field number << 3 | wire type) then:
 *     wire type 0  a varint (int32, int64, enums; negative numbers as 10-byte two's complement)
 *     wire type 2  a varint length, then that many bytes (strings, bytes, nested messages,
 *                  packed repeated numbers)
 *     wire type 5  4 little-endian bytes (float)
 * Nested messages are written in place: pb_begin notes where the field starts, pb_end measures
 * what was written since and inserts the key and the length in front of it.
 *
 * The reader walks one message's fields (pb_next) over bytes in memory; every length is checked
 * against the bytes left, so a damaged file gives an error, never a read past the end.
 */
#ifndef DQ_PROTOBUF_H
#define DQ_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Pb {
    uint8_t *b;
    size_t len, cap;
    size_t open[16];   // where each open nested field's content starts
    int depth;
} Pb;

void pb_init(Pb *p);
void pb_free(Pb *p);
void pb_int(Pb *p, int field, int64_t v);                        // wire type 0
void pb_float(Pb *p, int field, float v);                        // wire type 5
void pb_bytes(Pb *p, int field, const void *data, size_t n);     // wire type 2
void pb_string(Pb *p, int field, const char *s);                 // wire type 2
void pb_packed_int(Pb *p, int field, const int64_t *v, int n);   // repeated int64, packed
void pb_append(Pb *p, const Pb *fields);                          // fields written elsewhere
void pb_begin(Pb *p, int field);                                  // a nested message …
void pb_end(Pb *p);                                               // … ends here

/* Reading: one field of a message. */
typedef struct PbField {
    int field, wire;
    uint64_t v;               // wire 0: the varint; wire 5: the 4 bytes
    const uint8_t *data;      // wire 2: the bytes …
    size_t len;               // … and their count
} PbField;

/* The next field of the message in [*at, end): false at its end or on damage (*bad set). */
bool pb_next(const uint8_t **at, const uint8_t *end, PbField *f, bool *bad);

#endif
