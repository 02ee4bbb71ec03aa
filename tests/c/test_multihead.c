/*
 * test_multihead.c: the C interface of libmultihead (include/multihead.h), exercised from C.
 *
 * Calls every function of the header and its error paths (NULL handles and pointers, destroyed
 * handles, struct_size, ranks, dtypes, negative and overflowing sizes, unknown names, missing
 * and malformed files), checking each status and that mh_last_error_message() names the
 * argument; computes the seed article's examples against PyTorch's fixtures; checks strided
 * layouts and concurrent forwards from 8 threads (same bits as one thread).
 *
 *   test_multihead FIXTURE_DIR_OR_EXAMPLE1 [EXAMPLE2]
 *
 * argv[1] is the path of Tests/MultiheadTests/Fixtures/seed/example1.safetensors (example2 is
 * looked for beside it unless given). Prints "N passed, M failed"; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "multihead.h"
#include "check.h"

/* ------------------------------------------------------------------------------------------ */
/* Checks                                                                                     */






static int temp_index;

/* A fresh path under the temporary directory. */
static void temp_path(char *out, size_t size, const char *what) {
    const char *dir = getenv("TMPDIR");
    snprintf(out, size, "%s/mh_c_test_%ld_%d_%s", dir && dir[0] ? dir : "/tmp", (long)getpid(), temp_index++, what);
}

/* ------------------------------------------------------------------------------------------ */
/* A tiny safetensors reader (F32 tensors by name) and writer                                 */

#include "safetensors_reader.h"

/* Reads F32 tensor `name` into a malloc'd array; its shape into shape/rank. NULL if absent. */
static float *st_read_f32(const st_file *f, const char *name, int64_t *shape, int32_t *rank) {
    char pattern[256];
    snprintf(pattern, sizeof pattern, "\"%s\"", name);
    const char *at = f->header;
    while ((at = strstr(at, pattern)) != NULL) {
        const char *after = at + strlen(pattern);
        while (*after == ' ') after++;
        if (*after == ':' && (at == f->header || at[-1] != '\\')) break;
        at = after;
    }
    if (!at) return NULL;
    const char *end = strchr(at, '}');
    const char *dtype = strstr(at, "\"dtype\"");
    const char *shape_at = strstr(at, "\"shape\"");
    const char *offsets = strstr(at, "\"data_offsets\"");
    if (!end || !dtype || !shape_at || !offsets || dtype > end || shape_at > end || offsets > end) return NULL;
    if (!strstr(dtype, "\"F32\"") || strstr(dtype, "\"F32\"") > end) return NULL;
    const char *p = strchr(shape_at, '[') + 1;
    *rank = 0;
    int64_t count = 1;
    while (*p != ']') {
        char *next;
        long long d = strtoll(p, &next, 10);
        if (next == p) { p++; continue; }
        shape[(*rank)++] = d;
        count *= d;
        p = next;
    }
    p = strchr(offsets, '[') + 1;
    char *next;
    long long begin = strtoll(p, &next, 10);
    long long stop = strtoll(next + 1, &next, 10);
    if (stop - begin != count * 4 || f->data_start + (size_t)stop > f->size) return NULL;
    float *out = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    memcpy(out, f->bytes + f->data_start + begin, (size_t)count * sizeof(float));
    return out;
}

typedef struct {
    const char *name;
    const char *dtype;
    int32_t rank;
    int64_t shape[4];
    const void *data;
    size_t bytes;
} st_entry;

static void write_bytes(const char *path, const void *data, size_t size) {
    FILE *file = fopen(path, "wb");
    if (!file) { perror(path); exit(2); }
    fwrite(data, 1, size, file);
    fclose(file);
}

/* Writes a safetensors file of the entries. */
static void st_write(const char *path, const st_entry *entries, int count) {
    char header[4096];
    size_t len = 0;
    size_t offset = 0;
    len += (size_t)snprintf(header + len, sizeof header - len, "{");
    for (int i = 0; i < count; i++) {
        len += (size_t)snprintf(header + len, sizeof header - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                i ? "," : "", entries[i].name, entries[i].dtype);
        for (int d = 0; d < entries[i].rank; d++)
            len += (size_t)snprintf(header + len, sizeof header - len, "%s%lld", d ? "," : "", (long long)entries[i].shape[d]);
        len += (size_t)snprintf(header + len, sizeof header - len, "],\"data_offsets\":[%zu,%zu]}", offset,
                                offset + entries[i].bytes);
        offset += entries[i].bytes;
    }
    len += (size_t)snprintf(header + len, sizeof header - len, "}");
    while (len % 8) header[len++] = ' ';
    size_t total = 8 + len + offset;
    unsigned char *buffer = malloc(total);
    for (int i = 0; i < 8; i++) buffer[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buffer + 8, header, len);
    size_t at = 8 + len;
    for (int i = 0; i < count; i++) {
        memcpy(buffer + at, entries[i].data, entries[i].bytes);
        at += entries[i].bytes;
    }
    write_bytes(path, buffer, total);
    free(buffer);
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float random_float(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *random_floats(int64_t count) {
    float *out = malloc((size_t)count * sizeof(float));
    for (int64_t i = 0; i < count; i++) out[i] = random_float();
    return out;
}


static mh_tensor tensor3(float *data, int64_t a, int64_t b, int64_t c) {
    int64_t shape[3] = {a, b, c};
    return tensor(data, MH_DTYPE_F32, 3, shape);
}

static mh_mha *make_module(mh_engine *engine, int64_t E, int64_t H, int64_t kdim, int64_t vdim, int64_t qdim,
                           int add_bias_kv, int batch_first) {
    mh_mha_config config;
    mh_mha_config_init(&config);
    config.embed_dim = E;
    config.num_heads = H;
    config.kdim = kdim;
    config.vdim = vdim;
    config.qdim = qdim;
    config.add_bias_kv = add_bias_kv;
    config.batch_first = batch_first;
    config.seed = 7;
    mh_mha *mha = NULL;
    if (mh_mha_create(engine, &config, &mha) != MH_OK) {
        fprintf(stderr, "mh_mha_create failed: %s\n", mh_last_error_message());
        exit(2);
    }
    return mha;
}

/* Sets every parameter to random values. */
static void randomize_parameters(mh_mha *mha) {
    int32_t count = 0;
    OK(mh_mha_parameter_count(mha, &count));
    for (int32_t i = 0; i < count; i++) {
        const char *name = NULL;
        int32_t rank = 0;
        int64_t shape[MH_MAX_RANK];
        OK(mh_mha_parameter_info(mha, i, &name, &rank, shape));
        int64_t n = 1;
        for (int d = 0; d < rank; d++) n *= shape[d];
        float *values = random_floats(n);
        mh_tensor t = tensor(values, MH_DTYPE_F32, rank, shape);
        OK(mh_mha_set_parameter(mha, name, &t));
        free(values);
    }
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* ------------------------------------------------------------------------------------------ */
/* Status strings, version, tensor descriptors                                                */

static void test_status_strings_and_version(void) {
    const struct { mh_status status; const char *name; } table[] = {
        {MH_OK, "MH_OK"}, {MH_ERR_INVALID_ARGUMENT, "MH_ERR_INVALID_ARGUMENT"}, {MH_ERR_SHAPE, "MH_ERR_SHAPE"},
        {MH_ERR_OUT_OF_MEMORY, "MH_ERR_OUT_OF_MEMORY"}, {MH_ERR_IO, "MH_ERR_IO"}, {MH_ERR_FORMAT, "MH_ERR_FORMAT"},
        {MH_ERR_UNSUPPORTED, "MH_ERR_UNSUPPORTED"}, {MH_ERR_INTERNAL, "MH_ERR_INTERNAL"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *s = mh_status_string(table[i].status);
        CHECK(s != NULL && strcmp(s, table[i].name) == 0, "mh_status_string(%d) = %s", (int)table[i].status, s ? s : "NULL");
    }
    const char *unknown = mh_status_string((mh_status)12345);
    CHECK(unknown != NULL && unknown[0] != '\0', "unknown status string");
    CHECK(mh_last_error_message() != NULL, "mh_last_error_message is never NULL");
    CHECK(mh_version_number() == MH_VERSION_NUMBER, "version %u != %d", mh_version_number(), MH_VERSION_NUMBER);
}

static void test_tensor_init_contiguous(void) {
    float data[24];
    int64_t shape[3] = {2, 3, 4};
    mh_tensor t;
    OK(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, 3, shape));
    CHECK(t.data == data && t.dtype == MH_DTYPE_F32 && t.rank == 3, "fields");
    CHECK(t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 4, "shape");
    CHECK(t.strides[0] == 12 && t.strides[1] == 4 && t.strides[2] == 1, "strides %lld %lld %lld",
          (long long)t.strides[0], (long long)t.strides[1], (long long)t.strides[2]);
    OK(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, 0, NULL)); /* a scalar */
    CHECK(t.rank == 0, "rank 0");
    OK(mh_tensor_init_contiguous(&t, NULL, MH_DTYPE_BOOL, 3, (int64_t[]){0, 5, 2}));
    EXPECT_STATUS(mh_tensor_init_contiguous(NULL, data, MH_DTYPE_F32, 3, shape), MH_ERR_INVALID_ARGUMENT, "t");
    EXPECT_STATUS(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, 3, NULL), MH_ERR_INVALID_ARGUMENT, "shape");
    EXPECT_STATUS(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, MH_MAX_RANK + 1, shape), MH_ERR_SHAPE, "rank");
    EXPECT_STATUS(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, -1, shape), MH_ERR_SHAPE, "rank");
    EXPECT_STATUS(mh_tensor_init_contiguous(&t, data, MH_DTYPE_F32, 2, (int64_t[]){3, -1}), MH_ERR_SHAPE, "-1");
}

/* ------------------------------------------------------------------------------------------ */
/* Engine                                                                                     */

static void test_engine(void) {
    mh_engine_options options;
    memset(&options, 0xAB, sizeof options);
    mh_engine_options_init(&options);
    CHECK(options.struct_size == sizeof(mh_engine_options) && options.num_threads == 0, "engine options defaults");
    mh_engine_options_init(NULL); /* harmless */

    mh_engine *engine = NULL;
    OK(mh_engine_create(NULL, &engine));
    int32_t threads = -1;
    OK(mh_engine_num_threads(engine, &threads));
    CHECK(threads >= 1, "default engine threads %d", threads);
    mh_engine_destroy(engine);

    options.num_threads = 2;
    OK(mh_engine_create(&options, &engine));
    OK(mh_engine_num_threads(engine, &threads));
    CHECK(threads == 2, "engine threads %d", threads);
    EXPECT_STATUS(mh_engine_num_threads(engine, NULL), MH_ERR_INVALID_ARGUMENT, "out");
    EXPECT_STATUS(mh_engine_num_threads(NULL, &threads), MH_ERR_INVALID_ARGUMENT, "engine");
    mh_engine_destroy(engine);
    EXPECT_STATUS(mh_engine_num_threads(engine, &threads), MH_ERR_INVALID_ARGUMENT, "engine"); /* destroyed */
    mh_engine_destroy(NULL);

    EXPECT_STATUS(mh_engine_create(&options, NULL), MH_ERR_INVALID_ARGUMENT, "out");
    mh_engine_options bad = options;
    bad.struct_size = 3;
    EXPECT_STATUS(mh_engine_create(&bad, &engine), MH_ERR_INVALID_ARGUMENT, "struct_size");
    bad.struct_size = sizeof bad + 8;
    EXPECT_STATUS(mh_engine_create(&bad, &engine), MH_ERR_INVALID_ARGUMENT, "struct_size");
    bad = options;
    bad.num_threads = -2;
    EXPECT_STATUS(mh_engine_create(&bad, &engine), MH_ERR_INVALID_ARGUMENT, "threads");
}

/* ------------------------------------------------------------------------------------------ */
/* Module creation and parameters                                                             */

static void test_module_create(void) {
    mh_mha_config config;
    memset(&config, 0xCD, sizeof config);
    mh_mha_config_init(&config);
    CHECK(config.struct_size == sizeof(mh_mha_config) && config.embed_dim == 0 && config.num_heads == 0 &&
              config.dropout == 0.0f && config.bias == 1 && config.add_bias_kv == 0 && config.add_zero_attn == 0 &&
              config.kdim == 0 && config.vdim == 0 && config.qdim == 0 && config.batch_first == 0,
          "mh_mha_config_init defaults");
    mh_mha_config_init(NULL);

    mh_mha *mha = NULL;
    config.embed_dim = 4;
    config.num_heads = 2;
    OK(mh_mha_create(NULL, &config, &mha)); /* the shared default engine */
    mh_mha_destroy(mha);
    mh_mha_destroy(NULL);

    EXPECT_STATUS(mh_mha_create(NULL, NULL, &mha), MH_ERR_INVALID_ARGUMENT, "config");
    EXPECT_STATUS(mh_mha_create(NULL, &config, NULL), MH_ERR_INVALID_ARGUMENT, "out");
    mh_mha_config bad = config;
    bad.struct_size = 8;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "struct_size");
    bad = config;
    bad.embed_dim = 0;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "embed_dim");
    bad = config;
    bad.num_heads = -2;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "num_heads");
    bad = config;
    bad.num_heads = 3;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "divisible");
    bad = config;
    bad.kdim = -5;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "kdim");
    bad = config;
    bad.vdim = -1;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "vdim");
    bad = config;
    bad.qdim = -1;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "qdim");
    bad = config;
    bad.dropout = 2.0f;
    EXPECT_STATUS(mh_mha_create(NULL, &bad, &mha), MH_ERR_INVALID_ARGUMENT, "dropout");
    bad = config;
    bad.embed_dim = INT64_MAX / 2;
    bad.num_heads = 1;
    mh_status huge = mh_mha_create(NULL, &bad, &mha);
    CHECK(huge == MH_ERR_OUT_OF_MEMORY || huge == MH_ERR_INVALID_ARGUMENT, "huge embed_dim gives %s", mh_status_string(huge));
    CHECK(mh_last_error_message()[0] != '\0', "huge embed_dim message");

    mh_engine *engine = NULL;
    OK(mh_engine_create(NULL, &engine));
    mh_engine_destroy(engine);
    EXPECT_STATUS(mh_mha_create(engine, &config, &mha), MH_ERR_INVALID_ARGUMENT, "engine"); /* destroyed engine */
}

static void test_parameters(void) {
    mh_mha *mha = make_module(NULL, 8, 2, 3, 5, 6, 1, 0); /* separate q/k/v weights, bias_k/v */
    int32_t count = 0;
    OK(mh_mha_parameter_count(mha, &count));
    const char *expected_names[] = {"q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                                    "bias_k", "bias_v", "out_proj.weight", "out_proj.bias"};
    const int64_t expected_shapes[][3] = {{8, 6}, {8, 3}, {8, 5}, {24}, {1, 1, 8}, {1, 1, 8}, {8, 8}, {8}};
    const int32_t expected_ranks[] = {2, 2, 2, 1, 3, 3, 2, 1};
    CHECK(count == 8, "parameter count %d", count);
    for (int32_t i = 0; i < count && i < 8; i++) {
        const char *name = NULL;
        int32_t rank = 0;
        int64_t shape[MH_MAX_RANK];
        OK(mh_mha_parameter_info(mha, i, &name, &rank, shape));
        CHECK(name && strcmp(name, expected_names[i]) == 0, "name %d: %s", i, name ? name : "NULL");
        CHECK(rank == expected_ranks[i], "rank of %s: %d", expected_names[i], rank);
        for (int d = 0; d < rank && d < 3; d++)
            CHECK(shape[d] == expected_shapes[i][d], "%s shape[%d] = %lld", expected_names[i], d, (long long)shape[d]);
    }
    const char *name;
    int32_t rank;
    int64_t shape[MH_MAX_RANK];
    EXPECT_STATUS(mh_mha_parameter_count(NULL, &count), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_parameter_count(mha, NULL), MH_ERR_INVALID_ARGUMENT, "out");
    EXPECT_STATUS(mh_mha_parameter_info(mha, count, &name, &rank, shape), MH_ERR_INVALID_ARGUMENT, "index");
    EXPECT_STATUS(mh_mha_parameter_info(mha, -1, &name, &rank, shape), MH_ERR_INVALID_ARGUMENT, "index");
    EXPECT_STATUS(mh_mha_parameter_info(mha, 0, NULL, &rank, shape), MH_ERR_INVALID_ARGUMENT, "name");
    EXPECT_STATUS(mh_mha_parameter_info(mha, 0, &name, NULL, shape), MH_ERR_INVALID_ARGUMENT, "rank");
    EXPECT_STATUS(mh_mha_parameter_info(mha, 0, &name, &rank, NULL), MH_ERR_INVALID_ARGUMENT, "shape");
    EXPECT_STATUS(mh_mha_parameter_info(NULL, 0, &name, &rank, shape), MH_ERR_INVALID_ARGUMENT, "mha");

    /* set, then get through a transposed (column-major) view */
    float w[8 * 3];
    for (int i = 0; i < 24; i++) w[i] = (float)i;
    mh_tensor t = tensor(w, MH_DTYPE_F32, 2, (int64_t[]){8, 3});
    OK(mh_mha_set_parameter(mha, "k_proj_weight", &t));
    float back[24];
    mh_tensor out = t;
    out.data = back;
    out.strides[0] = 1;
    out.strides[1] = 8; /* back[c * 8 + r] = w[r][c] */
    OK(mh_mha_get_parameter(mha, "k_proj_weight", &out));
    int same = 1;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) same &= back[c * 8 + r] == w[r * 3 + c];
    CHECK(same, "strided get_parameter");
    /* set from a strided view: every other element of a wider buffer */
    float wide[24 * 2];
    for (int i = 0; i < 48; i++) wide[i] = (float)(i / 2) + (i % 2 ? 1000.0f : 0.0f);
    mh_tensor strided = tensor(wide, MH_DTYPE_F32, 1, (int64_t[]){24});
    strided.strides[0] = 2;
    OK(mh_mha_set_parameter(mha, "in_proj_bias", &strided));
    float bias[24];
    mh_tensor bias_t = tensor(bias, MH_DTYPE_F32, 1, (int64_t[]){24});
    OK(mh_mha_get_parameter(mha, "in_proj_bias", &bias_t));
    same = 1;
    for (int i = 0; i < 24; i++) same &= bias[i] == (float)i;
    CHECK(same, "strided set_parameter");

    /* errors */
    EXPECT_STATUS(mh_mha_set_parameter(mha, "in_proj_weight", &t), MH_ERR_INVALID_ARGUMENT, "in_proj_weight");
    EXPECT_STATUS(mh_mha_set_parameter(mha, "no_such_parameter", &t), MH_ERR_INVALID_ARGUMENT, "no_such_parameter");
    EXPECT_STATUS(mh_mha_get_parameter(mha, "no_such_parameter", &t), MH_ERR_INVALID_ARGUMENT, "no_such_parameter");
    EXPECT_STATUS(mh_mha_set_parameter(mha, NULL, &t), MH_ERR_INVALID_ARGUMENT, "name");
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", NULL), MH_ERR_INVALID_ARGUMENT, "value");
    EXPECT_STATUS(mh_mha_get_parameter(mha, "k_proj_weight", NULL), MH_ERR_INVALID_ARGUMENT, "out");
    EXPECT_STATUS(mh_mha_set_parameter(NULL, "k_proj_weight", &t), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_get_parameter(NULL, "k_proj_weight", &t), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_set_parameter(mha, "q_proj_weight", &t), MH_ERR_SHAPE, "q_proj_weight"); /* (8,3) != (8,6) */
    EXPECT_STATUS(mh_mha_get_parameter(mha, "q_proj_weight", &t), MH_ERR_SHAPE, "q_proj_weight");
    mh_tensor bad = t;
    bad.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "value");
    bad.dtype = (mh_dtype)77;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "dtype");
    EXPECT_STATUS(mh_mha_get_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "dtype");
    bad = t;
    bad.rank = MH_MAX_RANK + 1;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "rank");
    bad.rank = -3;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "rank");
    bad = t;
    bad.shape[0] = -8;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_SHAPE, "negative");
    bad = t;
    bad.data = NULL;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_INVALID_ARGUMENT, "data");
    bad = t;
    bad.shape[0] = INT64_C(1) << 40;
    bad.shape[1] = INT64_C(1) << 40;
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &bad), MH_ERR_OUT_OF_MEMORY, "overflow");
    /* values unchanged by the failed calls */
    OK(mh_mha_get_parameter(mha, "k_proj_weight", &out));
    same = 1;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) same &= back[c * 8 + r] == w[r * 3 + c];
    CHECK(same, "failed set_parameter changed nothing");

    mh_mha_destroy(mha);
    EXPECT_STATUS(mh_mha_parameter_count(mha, &count), MH_ERR_INVALID_ARGUMENT, "mha"); /* destroyed */
    EXPECT_STATUS(mh_mha_set_parameter(mha, "k_proj_weight", &t), MH_ERR_INVALID_ARGUMENT, "mha");

    /* packed projection names */
    mha = make_module(NULL, 4, 2, 0, 0, 0, 0, 0);
    OK(mh_mha_parameter_count(mha, &count));
    CHECK(count == 4, "packed count %d", count);
    OK(mh_mha_parameter_info(mha, 0, &name, &rank, shape));
    CHECK(strcmp(name, "in_proj_weight") == 0 && rank == 2 && shape[0] == 12 && shape[1] == 4, "in_proj_weight info");
    mh_mha_destroy(mha);
}

/* ------------------------------------------------------------------------------------------ */
/* Safetensors loading                                                                        */

static void test_safetensors(void) {
    mh_mha *mha = make_module(NULL, 4, 2, 0, 0, 0, 0, 0);
    float in_w[48], in_b[12], out_w[16], out_b[4], extra[3] = {1, 2, 3};
    for (int i = 0; i < 48; i++) in_w[i] = (float)i / 48.0f;
    for (int i = 0; i < 12; i++) in_b[i] = (float)i;
    for (int i = 0; i < 16; i++) out_w[i] = -(float)i;
    for (int i = 0; i < 4; i++) out_b[i] = 0.5f * (float)i;
    char path[512];

    /* good file with a prefix and an unrelated tensor */
    st_entry good[] = {
        {"m.in_proj_weight", "F32", 2, {12, 4}, in_w, sizeof in_w}, {"m.in_proj_bias", "F32", 1, {12}, in_b, sizeof in_b},
        {"m.out_proj.weight", "F32", 2, {4, 4}, out_w, sizeof out_w}, {"m.out_proj.bias", "F32", 1, {4}, out_b, sizeof out_b},
        {"other.weight", "F32", 1, {3}, extra, sizeof extra},
    };
    temp_path(path, sizeof path, "good.safetensors");
    st_write(path, good, 5);
    OK(mh_mha_load_safetensors(mha, path, "m."));
    float check[48];
    mh_tensor t = tensor(check, MH_DTYPE_F32, 2, (int64_t[]){12, 4});
    OK(mh_mha_get_parameter(mha, "in_proj_weight", &t));
    CHECK(memcmp(check, in_w, sizeof in_w) == 0, "loaded in_proj_weight");
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, NULL), MH_ERR_INVALID_ARGUMENT, "in_proj_weight"); /* no prefix: missing */
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, "nope."), MH_ERR_INVALID_ARGUMENT, "in_proj_weight");
    unlink(path);

    /* NULL prefix on an exact state_dict file */
    st_entry plain[] = {
        {"in_proj_weight", "F32", 2, {12, 4}, in_w, sizeof in_w}, {"in_proj_bias", "F32", 1, {12}, in_b, sizeof in_b},
        {"out_proj.weight", "F32", 2, {4, 4}, out_w, sizeof out_w}, {"out_proj.bias", "F32", 1, {4}, out_b, sizeof out_b},
    };
    temp_path(path, sizeof path, "plain.safetensors");
    st_write(path, plain, 4);
    OK(mh_mha_load_safetensors(mha, path, NULL));
    unlink(path);

    /* wrong shape */
    st_entry wrong[4];
    memcpy(wrong, plain, sizeof wrong);
    wrong[1].shape[0] = 6;
    wrong[1].bytes = 6 * sizeof(float);
    temp_path(path, sizeof path, "wrong.safetensors");
    st_write(path, wrong, 4);
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_SHAPE, "in_proj_bias");
    unlink(path);

    /* an int64 weight */
    int64_t ints[12] = {0};
    memcpy(wrong, plain, sizeof wrong);
    wrong[1].dtype = "I64";
    wrong[1].data = ints;
    wrong[1].bytes = sizeof ints;
    temp_path(path, sizeof path, "int.safetensors");
    st_write(path, wrong, 4);
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_UNSUPPORTED, "I64");
    unlink(path);

    /* the failed loads changed nothing */
    OK(mh_mha_get_parameter(mha, "in_proj_weight", &t));
    CHECK(memcmp(check, in_w, sizeof in_w) == 0, "failed loads left in_proj_weight alone");

    /* missing file */
    temp_path(path, sizeof path, "missing.safetensors");
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_IO, "missing.safetensors");

    /* malformed files */
    temp_path(path, sizeof path, "short.safetensors");
    write_bytes(path, "abc", 3);
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_FORMAT, NULL);
    unlink(path);
    unsigned char huge_header[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    temp_path(path, sizeof path, "huge.safetensors");
    write_bytes(path, huge_header, sizeof huge_header);
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_FORMAT, NULL);
    unlink(path);
    unsigned char bad_json[8 + 16] = {16, 0, 0, 0, 0, 0, 0, 0};
    memcpy(bad_json + 8, "{\"a\": [1, 2,    ", 16);
    temp_path(path, sizeof path, "json.safetensors");
    write_bytes(path, bad_json, sizeof bad_json);
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_FORMAT, NULL);
    unlink(path);
    memcpy(wrong, plain, sizeof wrong);
    temp_path(path, sizeof path, "truncated.safetensors");
    st_write(path, wrong, 4);
    { /* cut the data short: offsets point past the end */
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        if (truncate(path, size - 8) != 0) perror("truncate");
    }
    EXPECT_STATUS(mh_mha_load_safetensors(mha, path, ""), MH_ERR_FORMAT, NULL);
    unlink(path);

    EXPECT_STATUS(mh_mha_load_safetensors(mha, NULL, ""), MH_ERR_INVALID_ARGUMENT, "path");
    EXPECT_STATUS(mh_mha_load_safetensors(NULL, "x", ""), MH_ERR_INVALID_ARGUMENT, "mha");
    mh_mha_destroy(mha);
}

/* ------------------------------------------------------------------------------------------ */
/* Shapes and forward errors                                                                  */

static void test_output_shapes(void) {
    mh_forward_options options;
    memset(&options, 0x5A, sizeof options);
    mh_forward_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.need_weights == 1 && options.average_attn_weights == 1 &&
              options.is_causal == 0, "forward options defaults");
    mh_forward_options_init(NULL);

    mh_mha *mha = make_module(NULL, 8, 2, 6, 0, 0, 1, 0);
    mh_tensor q = tensor3(NULL, 5, 3, 8), k = tensor3(NULL, 7, 3, 6), v = tensor3(NULL, 7, 3, 8);
    int32_t out_rank = -1, w_rank = -1;
    int64_t out_shape[MH_MAX_RANK], w_shape[MH_MAX_RANK];
    OK(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape));
    CHECK(out_rank == 3 && out_shape[0] == 5 && out_shape[1] == 3 && out_shape[2] == 8, "output shape");
    CHECK(w_rank == 3 && w_shape[0] == 3 && w_shape[1] == 5 && w_shape[2] == 8, "weights shape (N, L, S+1)");
    options.average_attn_weights = 0;
    OK(mh_mha_output_shapes(mha, &q, &k, &v, &options, &out_rank, out_shape, &w_rank, w_shape));
    CHECK(w_rank == 4 && w_shape[0] == 3 && w_shape[1] == 2 && w_shape[2] == 5 && w_shape[3] == 8, "per-head weights shape");
    options.need_weights = 0;
    OK(mh_mha_output_shapes(mha, &q, &k, &v, &options, &out_rank, out_shape, &w_rank, w_shape));
    CHECK(w_rank == 0, "no weights: rank %d", w_rank);
    mh_forward_options_init(&options);
    /* unbatched */
    mh_tensor uq = tensor(NULL, MH_DTYPE_F32, 2, (int64_t[]){0, 8}), uk = tensor(NULL, MH_DTYPE_F32, 2, (int64_t[]){0, 6}),
              uv = tensor(NULL, MH_DTYPE_F32, 2, (int64_t[]){0, 8});
    uq.shape[0] = 5;
    uk.shape[0] = uv.shape[0] = 7;
    OK(mh_mha_output_shapes(mha, &uq, &uk, &uv, NULL, &out_rank, out_shape, &w_rank, w_shape));
    CHECK(out_rank == 2 && out_shape[0] == 5 && out_shape[1] == 8 && w_rank == 2 && w_shape[0] == 5 && w_shape[1] == 8,
          "unbatched shapes");

    /* errors */
    EXPECT_STATUS(mh_mha_output_shapes(NULL, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_output_shapes(mha, NULL, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "query");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, NULL, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "key");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, NULL, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "value");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, NULL, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "output_rank");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, NULL, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "output_shape");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, NULL, w_shape), MH_ERR_INVALID_ARGUMENT, "weights_rank");
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, NULL), MH_ERR_INVALID_ARGUMENT, "weights_shape");
    mh_forward_options bad_options = options;
    bad_options.struct_size = 1;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, &bad_options, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "struct_size");
    mh_tensor bad = q;
    bad.rank = 4;
    bad.shape[3] = 1;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &bad, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "query");
    bad.rank = MH_MAX_RANK + 1;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &bad, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "query");
    bad.rank = -1;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &bad, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "query");
    bad = k;
    bad.shape[1] = -3;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &bad, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "key");
    bad = v;
    bad.dtype = (mh_dtype)0;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &bad, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "value");
    bad.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &bad, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "value");
    bad = k;
    bad.shape[2] = 8; /* kdim is 6 */
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &bad, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "kdim");
    bad = k;
    bad.shape[1] = 4; /* batch 4 != 3 */
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &bad, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_SHAPE, "key");
    mh_mha_destroy(mha);
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_INVALID_ARGUMENT, "mha");
}

/* Shapes whose element counts overflow int64 are OUT_OF_MEMORY errors, not traps. */
static void test_output_shapes_overflow(void) {
    mh_mha *mha = make_module(NULL, 8, 2, 0, 0, 0, 0, 0);
    int64_t huge = INT64_C(1) << 40;
    mh_tensor q = tensor3(NULL, 0, 0, 8), k = tensor3(NULL, 0, 0, 8), v = tensor3(NULL, 0, 0, 8);
    q.shape[0] = k.shape[0] = v.shape[0] = huge;
    q.shape[1] = k.shape[1] = v.shape[1] = huge; /* L * N * E overflows */
    int32_t out_rank, w_rank;
    int64_t out_shape[MH_MAX_RANK], w_shape[MH_MAX_RANK];
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape),
                  MH_ERR_OUT_OF_MEMORY, "overflow");
    q.shape[1] = k.shape[1] = v.shape[1] = 1;
    q.shape[0] = k.shape[0] = v.shape[0] = INT64_MAX / 4; /* weights N * L * S overflow */
    EXPECT_STATUS(mh_mha_output_shapes(mha, &q, &k, &v, NULL, &out_rank, out_shape, &w_rank, w_shape),
                  MH_ERR_OUT_OF_MEMORY, "overflow");
    mh_mha_destroy(mha);
}

static void test_forward_errors(void) {
    enum { E = 4, L = 3, S = 5, N = 2 };
    mh_mha *mha = make_module(NULL, E, 2, 0, 0, 0, 0, 0);
    float qd[L * N * E] = {0}, kd[S * N * E] = {0}, od[L * N * E], wd[N * L * S];
    unsigned char kpm_data[N * S] = {0};
    float am_data[L * S] = {0};
    mh_tensor q = tensor3(qd, L, N, E), k = tensor3(kd, S, N, E), v = tensor3(kd, S, N, E);
    mh_tensor out = tensor3(od, L, N, E), w = tensor3(wd, N, L, S);
    mh_tensor kpm = tensor(kpm_data, MH_DTYPE_BOOL, 2, (int64_t[]){N, S});
    mh_tensor am = tensor(am_data, MH_DTYPE_F32, 2, (int64_t[]){L, S});
    mh_forward_options options;
    mh_forward_options_init(&options);
    OK(mh_mha_forward(mha, &q, &k, &v, &kpm, &am, &options, &out, &w));
    OK(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &out, &w));

    EXPECT_STATUS(mh_mha_forward(NULL, &q, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_forward(mha, NULL, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "query");
    EXPECT_STATUS(mh_mha_forward(mha, &q, NULL, &v, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "key");
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, NULL, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "value");
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, NULL, &w), MH_ERR_INVALID_ARGUMENT, "output");
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &out, NULL), MH_ERR_INVALID_ARGUMENT, "weights");
    options.need_weights = 0;
    OK(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, &options, &out, NULL));
    mh_forward_options_init(&options);
    mh_forward_options bad_options = options;
    bad_options.struct_size = 0;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, &bad_options, &out, &w), MH_ERR_INVALID_ARGUMENT, "struct_size");

    mh_tensor bad = q;
    bad.data = NULL;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "data");
    bad = q;
    bad.dtype = (mh_dtype)99;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_SHAPE, "dtype");
    bad = q;
    bad.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_SHAPE, "query");
    bad = q;
    bad.rank = MH_MAX_RANK + 1;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_SHAPE, "rank");
    bad = q;
    bad.rank = 1;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_SHAPE, "query");
    bad = k;
    bad.shape[0] = -1;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &bad, &v, NULL, NULL, NULL, &out, &w), MH_ERR_SHAPE, "key");
    bad = q;
    bad.shape[0] = INT64_C(1) << 32;
    bad.shape[1] = INT64_C(1) << 32;
    bad.strides[0] = INT64_C(1) << 32;
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_OUT_OF_MEMORY, "overflow");
    bad = q;
    bad.strides[0] = INT64_MAX / 2; /* extent overflows even though the element count is small */
    EXPECT_STATUS(mh_mha_forward(mha, &bad, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_OUT_OF_MEMORY, "overflow");
    bad = out;
    bad.shape[0] = L + 1;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &bad, &w), MH_ERR_SHAPE, "output");
    bad = out;
    bad.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &bad, &w), MH_ERR_SHAPE, "output");
    bad = w;
    bad.shape[2] = S + 1;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &out, &bad), MH_ERR_SHAPE, "weights");
    bad = kpm;
    bad.shape[1] = S - 1;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, &bad, NULL, NULL, &out, &w), MH_ERR_SHAPE, "key_padding_mask");
    bad = kpm;
    bad.dtype = (mh_dtype)3;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, &bad, NULL, NULL, &out, &w), MH_ERR_SHAPE, "key_padding_mask");
    bad = am;
    bad.shape[0] = L + 2;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, &bad, NULL, &out, &w), MH_ERR_SHAPE, "attn_mask");
    bad = am;
    bad.rank = 1;
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, &bad, NULL, &out, &w), MH_ERR_SHAPE, "attn_mask");

    mh_mha_destroy(mha);
    EXPECT_STATUS(mh_mha_forward(mha, &q, &k, &v, NULL, NULL, NULL, &out, &w), MH_ERR_INVALID_ARGUMENT, "mha");
}

/* ------------------------------------------------------------------------------------------ */
/* Semantics: masks                                                                           */

static void test_masks(void) {
    enum { E = 8, H = 2, L = 3, S = 4, N = 2 };
    mh_mha *mha = make_module(NULL, E, H, 0, 0, 0, 0, 0);
    randomize_parameters(mha);
    float *qd = random_floats(L * N * E), *kd = random_floats(S * N * E);
    float a[L * N * E], b[L * N * E], wa[N * L * S], wb[N * L * S];
    mh_tensor q = tensor3(qd, L, N, E), k = tensor3(kd, S, N, E);
    mh_tensor oa = tensor3(a, L, N, E), ob = tensor3(b, L, N, E);
    mh_tensor wta = tensor3(wa, N, L, S), wtb = tensor3(wb, N, L, S);
    unsigned char bool_mask[N * S] = {0, 1, 0, 1, 1, 1, 1, 1}; /* batch 1 fully masked */
    float float_mask[N * S];
    for (int i = 0; i < N * S; i++) float_mask[i] = bool_mask[i] ? -INFINITY : 0.0f;
    mh_tensor kb = tensor(bool_mask, MH_DTYPE_BOOL, 2, (int64_t[]){N, S});
    mh_tensor kf = tensor(float_mask, MH_DTYPE_F32, 2, (int64_t[]){N, S});
    OK(mh_mha_forward(mha, &q, &k, &k, &kb, NULL, NULL, &oa, &wta));
    OK(mh_mha_forward(mha, &q, &k, &k, &kf, NULL, NULL, &ob, &wtb));
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(wa, wb, sizeof wa) == 0, "bool mask == float -inf mask");
    float out_bias[E];
    mh_tensor bias_t = tensor(out_bias, MH_DTYPE_F32, 1, (int64_t[]){E});
    OK(mh_mha_get_parameter(mha, "out_proj.bias", &bias_t));
    int documented = 1;
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) documented &= fabsf(a[(l * N + 1) * E + e] - out_bias[e]) <= 1e-6f;
    for (int i = 0; i < L * S; i++) documented &= wa[L * S + i] == 0.0f;
    for (int i = 0; i < L * N * E; i++) documented &= isfinite(a[i]) != 0;
    CHECK(documented, "fully masked batch: output = out_proj.bias, weights 0, no NaN");
    /* weights of unmasked keys sum to 1 and masked keys get 0 */
    double sum = 0;
    for (int s = 0; s < S; s++) sum += wa[s];
    CHECK(fabs(sum - 1.0) < 1e-5 && wa[1] == 0.0f && wa[3] == 0.0f, "weights row of batch 0");

    /* is_causal without a mask == an explicit top-left causal mask */
    unsigned char causal[L * S];
    for (int l = 0; l < L; l++)
        for (int s = 0; s < S; s++) causal[l * S + s] = s > l;
    mh_tensor cm = tensor(causal, MH_DTYPE_BOOL, 2, (int64_t[]){L, S});
    mh_forward_options options;
    mh_forward_options_init(&options);
    options.is_causal = 1;
    OK(mh_mha_forward(mha, &q, &k, &k, NULL, NULL, &options, &oa, &wta));
    OK(mh_mha_forward(mha, &q, &k, &k, NULL, &cm, NULL, &ob, &wtb));
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(wa, wb, sizeof wa) == 0, "is_causal == top-left causal mask");
    free(qd);
    free(kd);
    mh_mha_destroy(mha);
}

/* ------------------------------------------------------------------------------------------ */
/* The seed examples against PyTorch                                                          */

static void test_seed_fixture(const char *path, int64_t kdim) {
    st_file f;
    if (st_open(&f, path) != 0) {
        CHECK(0, "cannot read fixture %s", path);
        return;
    }
    int64_t qs[MH_MAX_RANK], ks[MH_MAX_RANK], vs[MH_MAX_RANK], os[MH_MAX_RANK], ws[MH_MAX_RANK];
    int32_t qr, kr, vr, orank, wr;
    float *q = st_read_f32(&f, "query", qs, &qr), *k = st_read_f32(&f, "key", ks, &kr);
    float *v = st_read_f32(&f, "value", vs, &vr), *expected = st_read_f32(&f, "expected.output", os, &orank);
    float *expected_w = st_read_f32(&f, "expected.weights", ws, &wr);
    CHECK(q && k && v && expected && expected_w, "fixture tensors in %s", path);
    if (!(q && k && v && expected && expected_w)) return;
    CHECK(qr == 3 && qs[0] == 2 && qs[1] == 5 && qs[2] == 4 && ks[2] == kdim, "fixture shapes");

    mh_mha *mha = make_module(NULL, 4, 2, kdim, 4, 0, 0, 0);
    OK(mh_mha_load_safetensors(mha, path, "param.")); /* query, key, expected.* are ignored */
    mh_tensor qt = tensor(q, MH_DTYPE_F32, qr, qs), kt = tensor(k, MH_DTYPE_F32, kr, ks), vt = tensor(v, MH_DTYPE_F32, vr, vs);
    int32_t out_rank, w_rank;
    int64_t out_shape[MH_MAX_RANK], w_shape[MH_MAX_RANK];
    OK(mh_mha_output_shapes(mha, &qt, &kt, &vt, NULL, &out_rank, out_shape, &w_rank, w_shape));
    CHECK(out_rank == orank && memcmp(out_shape, os, sizeof(int64_t) * 3) == 0, "output shape == PyTorch's");
    CHECK(w_rank == wr && memcmp(w_shape, ws, sizeof(int64_t) * 3) == 0, "weights shape == PyTorch's");
    float out[40], w[20];
    mh_tensor ot = tensor(out, MH_DTYPE_F32, out_rank, out_shape), wt = tensor(w, MH_DTYPE_F32, w_rank, w_shape);
    OK(mh_mha_forward(mha, &qt, &kt, &vt, NULL, NULL, NULL, &ot, &wt));
    double diff = max_diff(out, expected, 40), scale = max_abs(expected, 40);
    double wdiff = max_diff(w, expected_w, 20), wscale = max_abs(expected_w, 20);
    CHECK(diff <= 1e-5 * scale, "%s: output max |diff| %.3g > 1e-5 * %.3g", path, diff, scale);
    CHECK(wdiff <= 1e-5 * wscale, "%s: weights max |diff| %.3g > 1e-5 * %.3g", path, wdiff, wscale);
    printf("seed fixture %s: max |output - PyTorch| = %.3g, max |weights - PyTorch| = %.3g\n", path, diff, wdiff);

    /* The same input stored batch-major (N, L, E), passed as an (L, N, E) view by strides. */
    float *q_nle = malloc(sizeof(float) * 40);
    for (int l = 0; l < 2; l++)
        for (int n = 0; n < 5; n++)
            for (int e = 0; e < 4; e++) q_nle[(n * 2 + l) * 4 + e] = q[(l * 5 + n) * 4 + e];
    mh_tensor view = qt;
    view.data = q_nle;
    view.strides[0] = 4;     /* l */
    view.strides[1] = 2 * 4; /* n */
    view.strides[2] = 1;
    float out_view[40], w_view[20];
    mh_tensor ovt = ot, wvt = wt;
    ovt.data = out_view;
    wvt.data = w_view;
    OK(mh_mha_forward(mha, &view, &kt, &vt, NULL, NULL, NULL, &ovt, &wvt));
    CHECK(memcmp(out_view, out, sizeof out) == 0 && memcmp(w_view, w, sizeof w) == 0,
          "transposed (N, L, E) storage viewed as (L, N, E) gives the same bits");
    /* And the output written through strides into (N, L, E) storage. */
    float out_nle[40];
    mh_tensor onle = ot;
    onle.data = out_nle;
    onle.strides[0] = 4;
    onle.strides[1] = 8;
    onle.strides[2] = 1;
    OK(mh_mha_forward(mha, &view, &kt, &vt, NULL, NULL, NULL, &onle, &wvt));
    int same = 1;
    for (int l = 0; l < 2; l++)
        for (int n = 0; n < 5; n++)
            for (int e = 0; e < 4; e++) same &= out_nle[(n * 2 + l) * 4 + e] == out[(l * 5 + n) * 4 + e];
    CHECK(same, "strided output");

    /* A batch_first module on the (N, L, E) storage directly. */
    if (kdim == 4) {
        mh_mha *bf = make_module(NULL, 4, 2, 0, 0, 0, 0, 1);
        OK(mh_mha_load_safetensors(bf, path, "param."));
        mh_tensor qb = tensor3(q_nle, 5, 2, 4);
        float out_bf[40], w_bf[20];
        mh_tensor obt = tensor3(out_bf, 5, 2, 4), wbt = tensor3(w_bf, 5, 2, 2);
        OK(mh_mha_forward(bf, &qb, &qb, &qb, NULL, NULL, NULL, &obt, &wbt));
        same = 1;
        for (int l = 0; l < 2; l++)
            for (int n = 0; n < 5; n++)
                for (int e = 0; e < 4; e++) same &= out_bf[(n * 2 + l) * 4 + e] == out[(l * 5 + n) * 4 + e];
        CHECK(same && memcmp(w_bf, w, sizeof w) == 0, "batch_first module on (N, L, E) == (L, N, E) module");
        mh_mha_destroy(bf);
    }
    free(q_nle);
    free(q);
    free(k);
    free(v);
    free(expected);
    free(expected_w);
    mh_mha_destroy(mha);
    st_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency                                                                                */

enum { CE = 64, CH = 4, CL = 37, CS = 53, CN = 3, CALLS = 6, THREADS = 8 };

typedef struct {
    const mh_mha *mha;
    const float *q, *k;
    const float *expected_out, *expected_w;
    int mismatches;
    int errors;
    int message_ok;
} worker;

static void *run_worker(void *arg) {
    worker *job = arg;
    float *out = malloc(sizeof(float) * CL * CN * CE), *w = malloc(sizeof(float) * CN * CL * CS);
    mh_tensor q = tensor3((float *)job->q, CL, CN, CE), k = tensor3((float *)job->k, CS, CN, CE);
    mh_tensor ot = tensor3(out, CL, CN, CE), wt = tensor3(w, CN, CL, CS);
    for (int i = 0; i < CALLS; i++) {
        if (mh_mha_forward(job->mha, &q, &k, &k, NULL, NULL, NULL, &ot, &wt) != MH_OK) job->errors++;
        if (memcmp(out, job->expected_out, sizeof(float) * CL * CN * CE) != 0 ||
            memcmp(w, job->expected_w, sizeof(float) * CN * CL * CS) != 0)
            job->mismatches++;
    }
    /* The error message is per thread. */
    char name[64];
    snprintf(name, sizeof name, "thread_%p_parameter", (void *)job);
    mh_tensor t = tensor3(out, 1, 1, 1);
    mh_status s = mh_mha_set_parameter((mh_mha *)job->mha, name, &t);
    job->message_ok = s == MH_ERR_INVALID_ARGUMENT && strstr(mh_last_error_message(), name) != NULL;
    free(out);
    free(w);
    return NULL;
}

static void test_concurrency(void) {
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.num_threads = 2;
    mh_engine *engine = NULL;
    OK(mh_engine_create(&options, &engine));
    mh_mha *mha = make_module(engine, CE, CH, 0, 0, 0, 0, 0);
    randomize_parameters(mha);
    float *q = random_floats(CL * CN * CE), *k = random_floats(CS * CN * CE);
    float *out = malloc(sizeof(float) * CL * CN * CE), *w = malloc(sizeof(float) * CN * CL * CS);
    mh_tensor qt = tensor3(q, CL, CN, CE), kt = tensor3(k, CS, CN, CE);
    mh_tensor ot = tensor3(out, CL, CN, CE), wt = tensor3(w, CN, CL, CS);
    OK(mh_mha_forward(mha, &qt, &kt, &kt, NULL, NULL, NULL, &ot, &wt));

    /* one thread vs two: same bits */
    mh_engine *single = NULL;
    options.num_threads = 1;
    OK(mh_engine_create(&options, &single));
    mh_mha *same_module = make_module(single, CE, CH, 0, 0, 0, 0, 0);
    int32_t count = 0;
    OK(mh_mha_parameter_count(mha, &count));
    for (int32_t i = 0; i < count; i++) {
        const char *name;
        int32_t rank;
        int64_t shape[MH_MAX_RANK];
        OK(mh_mha_parameter_info(mha, i, &name, &rank, shape));
        int64_t n = 1;
        for (int d = 0; d < rank; d++) n *= shape[d];
        float *values = malloc(sizeof(float) * (size_t)n);
        mh_tensor t = tensor(values, MH_DTYPE_F32, rank, shape);
        OK(mh_mha_get_parameter(mha, name, &t));
        OK(mh_mha_set_parameter(same_module, name, &t));
        free(values);
    }
    float *out1 = malloc(sizeof(float) * CL * CN * CE), *w1 = malloc(sizeof(float) * CN * CL * CS);
    mh_tensor o1 = tensor3(out1, CL, CN, CE), w1t = tensor3(w1, CN, CL, CS);
    OK(mh_mha_forward(same_module, &qt, &kt, &kt, NULL, NULL, NULL, &o1, &w1t));
    CHECK(memcmp(out1, out, sizeof(float) * CL * CN * CE) == 0 && memcmp(w1, w, sizeof(float) * CN * CL * CS) == 0,
          "1 engine thread == 2 engine threads, bit for bit");

    pthread_t threads[THREADS];
    worker jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (worker){mha, q, k, out, w, 0, 0, 0};
        CHECK(pthread_create(&threads[i], NULL, run_worker, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].errors == 0, "thread %d: %d failed forwards", i, jobs[i].errors);
        CHECK(jobs[i].mismatches == 0, "thread %d: %d results differ from the single-thread result", i, jobs[i].mismatches);
        CHECK(jobs[i].message_ok, "thread %d: its own error message", i);
    }
    free(out1);
    free(w1);
    free(q);
    free(k);
    free(out);
    free(w);
    mh_mha_destroy(same_module);
    mh_mha_destroy(mha);
    mh_engine_destroy(single);
    mh_engine_destroy(engine);
}

/* ------------------------------------------------------------------------------------------ */

/* Runs one group of tests in a child process, so that a trap in the library (which kills the
 * process: a Swift runtime error cannot be caught) is reported as a failure of that group and
 * the other groups still run. The parent never calls the library itself, so no child inherits
 * its worker threads' state. MH_TEST_NO_FORK=1 runs everything in one process (for debuggers). */

static const char *example1_path;
static char example2_path[4096];

static void test_seed_example1(void) { test_seed_fixture(example1_path, 4); }
static void test_seed_example2(void) { test_seed_fixture(example2_path, 6); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s path/to/seed/example1.safetensors [example2.safetensors]\n", argv[0]);
        return 2;
    }
    example1_path = argv[1];
    if (argc >= 3) {
        snprintf(example2_path, sizeof example2_path, "%s", argv[2]);
    } else {
        snprintf(example2_path, sizeof example2_path, "%s", argv[1]);
        char *slash = strrchr(example2_path, '/');
        char *name = slash ? slash + 1 : example2_path;
        snprintf(name, sizeof example2_path - (size_t)(name - example2_path), "example2.safetensors");
    }

    run_group("status strings and version", test_status_strings_and_version);
    run_group("mh_tensor_init_contiguous", test_tensor_init_contiguous);
    run_group("engine", test_engine);
    run_group("module creation", test_module_create);
    run_group("parameters", test_parameters);
    run_group("safetensors", test_safetensors);
    run_group("output shapes", test_output_shapes);
    run_group("output shapes overflow", test_output_shapes_overflow);
    run_group("forward errors", test_forward_errors);
    run_group("masks", test_masks);
    run_group("seed example 1 vs PyTorch", test_seed_example1);
    run_group("seed example 2 vs PyTorch", test_seed_example2);
    run_group("concurrency", test_concurrency);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
