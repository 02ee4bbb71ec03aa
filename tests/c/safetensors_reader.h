/* A minimal reader of .safetensors files for the C tests: the whole file in memory and a
 * NUL-terminated copy of its JSON header; each test finds tensors in the header its own way. */
#ifndef MULTIHEAD_TESTS_SAFETENSORS_READER_H
#define MULTIHEAD_TESTS_SAFETENSORS_READER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *bytes;
    size_t size;
    const char *header; /* NUL-terminated copy of the JSON header */
    size_t data_start;
} st_file;

static inline int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *file = fopen(path, "rb");
    if (!file) return -1;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    if (size < 8) { fclose(file); return -1; }
    f->bytes = malloc((size_t)size);
    f->size = (size_t)size;
    if (fread(f->bytes, 1, f->size, file) != f->size) { fclose(file); return -1; }
    fclose(file);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->bytes[i];
    if (n > f->size - 8) return -1;
    char *header = malloc(n + 1);
    memcpy(header, f->bytes + 8, n);
    header[n] = '\0';
    f->header = header;
    f->data_start = 8 + n;
    return 0;
}

static inline void st_close(st_file *f) {
    free(f->bytes);
    free((void *)f->header);
    memset(f, 0, sizeof *f);
}

#endif
