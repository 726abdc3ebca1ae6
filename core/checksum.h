/* checksum.h — CRC-32 (IEEE 802.3, the polynomial of gzip, zip and PNG).
 *     crc = crc32_update(0, data, n)   — start from 0, feed blocks in order
 * Used by the gzip reader (data/) and by checkpoint files (train/).
 */
#ifndef DQ_CHECKSUM_H
#define DQ_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

#endif
