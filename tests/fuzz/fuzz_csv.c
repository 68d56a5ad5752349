/*
 * fuzz_csv.c — libFuzzer target for the strict CSV reader (csvread.h).
 *
 * Input: byte 0 picks the read chunk size, byte 1 the field limit, the rest
 * is the file.  Every input is parsed twice, once read in one piece and
 * once in small chunks; the two event streams (events, lines, rejects,
 * raw text, values) must be identical, so buffer refills, the row cap and
 * the long-row walk can never depend on how input happened to arrive.
 * Invariants checked on every row: lines strictly increase, raw text and
 * values are bounded, present values are non-empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csvread.h"
#include "error.h"
#include "../unit/testkit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;       /* FNV-1a */
    return h;
}

static uint64_t run(const uint8_t *s, size_t n, size_t chunk, size_t maxf)
{
    static const char *const cols[] = { "a", "b", "event_id", "ts", "" };
    struct tk_mem m = { s, n, 0, chunk };
    struct tly_csv *r;
    struct tly_csv_row row;
    uint64_t h = 14695981039346656037ull;
    long last_line = 0;
    int ev;

    if (tly_csv_open(&r, tk_mem_read, &m, maxf))
        abort();
    ev = tly_csv_header(r, cols, 5, &row);
    h = mix(h, &ev, sizeof ev);
    for (int i = 0; i < 5; i++) {
        int has = tly_csv_has_column(r, i);
        h = mix(h, &has, sizeof has);
    }
    if (ev == TLY_CSV_ROW || ev == TLY_CSV_QUOTE_ERROR)
        last_line = row.line;
    while (ev != TLY_CSV_END && ev != TLY_CSV_ERROR) {
        ev = tly_csv_next(r, &row);
        h = mix(h, &ev, sizeof ev);
        if (ev != TLY_CSV_ROW && ev != TLY_CSV_QUOTE_ERROR)
            break;
        if (row.line <= last_line || row.raw_len > TLY_CSV_RAW_MAX)
            abort();
        last_line = row.line;
        h = mix(h, &row.line, sizeof row.line);
        h = mix(h, row.raw, row.raw_len);
        if (ev == TLY_CSV_QUOTE_ERROR)
            continue;
        h = mix(h, &row.reject, sizeof row.reject);
        h = mix(h, &row.nfields, sizeof row.nfields);
        for (int i = 0; i < 5; i++) {
            if (row.val[i] && (row.len[i] == 0 || row.len[i] > maxf))
                abort();
            h = mix(h, &row.len[i], sizeof row.len[i]);
            if (row.val[i])
                h = mix(h, row.val[i], row.len[i]);
        }
    }
    {
        long rows = tly_csv_rows(r), lines = tly_csv_lines(r);
        h = mix(h, &rows, sizeof rows);
        h = mix(h, &lines, sizeof lines);
        if (lines < last_line)
            abort();
    }
    tly_csv_close(r);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk, maxf;

    if (size < 2)
        return 0;
    tly_error_quiet(1);
    chunk = 1 + data[0] % 16;
    maxf = data[1] < 128 ? 1 + data[1] : 65536;
    if (run(data + 2, size - 2, 0, maxf) != run(data + 2, size - 2, chunk, maxf))
        abort();
    return 0;
}
