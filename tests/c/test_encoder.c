/*
 * test_encoder.c: the encoder part of include/multihead.h, exercised from C.
 *
 * mh_encoder (TransformerEncoderLayer, TransformerEncoder, LayerNorm): creation, options and
 * their errors, parameters by PyTorch's names, every PyTorch fixture of
 * Tests/MultiheadTests/Fixtures/encoder (configuration read from each file's metadata), the seed
 * article's Example 3, strided views, concurrent forwards (same bits). mh_bert: the tiny BERT
 * made by Hugging Face transformers (hidden states and embeddings), id dtypes, and every
 * argument check (NULL, dtypes, ranks, shapes, ids out of range, destroyed handles).
 *
 *   test_encoder FIXTURES_DIR        (FIXTURES_DIR = Tests/MultiheadTests/Fixtures)
 *
 * Prints "N passed, M failed"; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multihead.h"
#include "check.h"





static char fixtures[4096];

/* ------------------------------------------------------------------------------------------ */
/* A tiny safetensors reader: raw tensors by name, and numbers from the metadata's config     */

#include "safetensors_reader.h"

/* Tensor `name`: a malloc'd copy of its bytes, its dtype ("F32", "BOOL", "I64") and shape; NULL
 * when absent. */
static void *st_read(const st_file *f, const char *name, char dtype[8], int64_t *shape, int32_t *rank) {
    char pattern[256];
    snprintf(pattern, sizeof pattern, "\"%s\":", name);
    const char *at = strstr(f->header, pattern);
    if (!at) return NULL;
    const char *end = strchr(at, '}');
    const char *d = strstr(at, "\"dtype\":\"");
    const char *s = strstr(at, "\"shape\":[");
    const char *o = strstr(at, "\"data_offsets\":[");
    if (!end || !d || !s || !o || d > end || s > end || o > end) return NULL;
    d += strlen("\"dtype\":\"");
    size_t length = (size_t)(strchr(d, '"') - d);
    if (length >= 8) return NULL;
    memcpy(dtype, d, length);
    dtype[length] = '\0';
    const char *p = s + strlen("\"shape\":[");
    *rank = 0;
    while (*p != ']') {
        char *next;
        long long v = strtoll(p, &next, 10);
        if (next == p) { p++; continue; }
        shape[(*rank)++] = v;
        p = next;
    }
    p = o + strlen("\"data_offsets\":[");
    char *next;
    long long begin = strtoll(p, &next, 10);
    long long stop = strtoll(next + 1, &next, 10);
    if (stop < begin || f->data_start + (size_t)stop > f->size) return NULL;
    void *out = malloc((size_t)(stop - begin) + 1);
    memcpy(out, f->bytes + f->data_start + begin, (size_t)(stop - begin));
    return out;
}

/* A number (or true = 1, false = 0) of the metadata's "config" JSON string, whose quotes are
 * escaped in the header: \"key\":value. NAN when absent. */
static double config_number(const st_file *f, const char *key) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\\\"%s\\\":", key);
    const char *at = strstr(f->header, pattern);
    if (!at) return NAN;
    at += strlen(pattern);
    while (*at == ' ') at++;
    if (strncmp(at, "true", 4) == 0) return 1;
    if (strncmp(at, "false", 5) == 0) return 0;
    return strtod(at, NULL);
}

/* Whether the config's string value of `key` is `value`. */
static int config_is(const st_file *f, const char *key, const char *value) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\\\"%s\\\":", key);
    const char *at = strstr(f->header, pattern);
    if (!at) return 0;
    at += strlen(pattern);
    while (*at == ' ') at++;
    char expected[64];
    snprintf(expected, sizeof expected, "\\\"%s\\\"", value);
    return strncmp(at, expected, strlen(expected)) == 0;
}


static int32_t dtype_of(const char *name) {
    if (strcmp(name, "F32") == 0) return MH_DTYPE_F32;
    if (strcmp(name, "BOOL") == 0) return MH_DTYPE_BOOL;
    if (strcmp(name, "I64") == 0) return MH_DTYPE_I64;
    return -1;
}

static double relative_error(const float *a, const float *b, int64_t n) {
    double scale = 1, worst = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst / scale;
}

static int64_t product(const int64_t *shape, int32_t rank) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= shape[i];
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoder modules                                                                            */

static mh_encoder *make_layer(int64_t d_model, int64_t nhead, int64_t dim_ff, int32_t activation, int32_t batch_first) {
    mh_encoder_layer_config c;
    mh_encoder_layer_config_init(&c);
    c.d_model = d_model;
    c.nhead = nhead;
    c.dim_feedforward = dim_ff;
    c.activation = activation;
    c.batch_first = batch_first;
    c.seed = 7;
    mh_encoder *layer = NULL;
    OK(mh_encoder_layer_create(NULL, &c, &layer));
    return layer;
}

static void test_create_and_options(void) {
    mh_encoder_layer_config c;
    mh_encoder_layer_config_init(&c);
    CHECK(c.struct_size == sizeof c && c.dim_feedforward == 2048 && fabsf(c.dropout - 0.1f) < 1e-7f &&
              c.activation == MH_ACTIVATION_RELU && c.layer_norm_eps == 1e-5 && c.bias == 1 && c.batch_first == 0 &&
              c.norm_first == 0, "PyTorch's defaults");
    mh_encoder *layer = NULL;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, &layer), MH_ERR_INVALID_ARGUMENT, "d_model");
    c.d_model = 10;
    c.nhead = 3;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, &layer), MH_ERR_INVALID_ARGUMENT, "divisible");
    c.nhead = 2;
    c.activation = 7;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, &layer), MH_ERR_INVALID_ARGUMENT, "activation");
    c.activation = MH_ACTIVATION_GELU;
    c.layer_norm_eps = -1;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, &layer), MH_ERR_INVALID_ARGUMENT, "layer_norm_eps");
    c.layer_norm_eps = 1e-5;
    c.struct_size = 3;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, &layer), MH_ERR_INVALID_ARGUMENT, "struct_size");
    c.struct_size = sizeof c;
    EXPECT_STATUS(mh_encoder_layer_create(NULL, NULL, &layer), MH_ERR_INVALID_ARGUMENT, "config");
    EXPECT_STATUS(mh_encoder_layer_create(NULL, &c, NULL), MH_ERR_INVALID_ARGUMENT, "out");
    EXPECT_STATUS(mh_encoder_layer_create((mh_engine *)&c, &c, &layer), MH_ERR_INVALID_ARGUMENT, "engine");
    OK(mh_encoder_layer_create(NULL, &c, &layer));

    mh_layer_norm_config n;
    mh_layer_norm_config_init(&n);
    CHECK(n.eps == 1e-5 && n.elementwise_affine == 1 && n.bias == 1, "LayerNorm defaults");
    mh_encoder *norm = NULL, *encoder = NULL;
    EXPECT_STATUS(mh_layer_norm_create(NULL, &n, &norm), MH_ERR_INVALID_ARGUMENT, "normalized_shape");
    n.normalized_shape = 8;
    OK(mh_layer_norm_create(NULL, &n, &norm));
    EXPECT_STATUS(mh_encoder_create(layer, 2, norm, &encoder), MH_ERR_INVALID_ARGUMENT, "normalized_shape 8");
    EXPECT_STATUS(mh_encoder_create(layer, 0, NULL, &encoder), MH_ERR_INVALID_ARGUMENT, "num_layers");
    EXPECT_STATUS(mh_encoder_create(norm, 1, NULL, &encoder), MH_ERR_INVALID_ARGUMENT, "layer must be");
    EXPECT_STATUS(mh_encoder_create(layer, 1, layer, &encoder), MH_ERR_INVALID_ARGUMENT, "norm must be");
    EXPECT_STATUS(mh_encoder_create(NULL, 1, NULL, &encoder), MH_ERR_INVALID_ARGUMENT, "layer");
    mh_encoder_destroy(norm);
    n.normalized_shape = 10;
    OK(mh_layer_norm_create(NULL, &n, &norm));
    OK(mh_encoder_create(layer, 3, norm, &encoder));
    int32_t count = 0;
    OK(mh_encoder_parameter_count(encoder, &count));
    CHECK(count == 3 * 12 + 2, "count %d", count);
    const char *name = NULL;
    int32_t rank = 0;
    int64_t shape[MH_MAX_RANK];
    OK(mh_encoder_parameter_info(encoder, 4, &name, &rank, shape));
    CHECK(strcmp(name, "layers.0.linear1.weight") == 0 && rank == 2 && shape[0] == 2048 && shape[1] == 10, "%s", name);
    OK(mh_encoder_parameter_info(encoder, count - 1, &name, &rank, shape));
    CHECK(strcmp(name, "norm.bias") == 0, "%s", name);
    EXPECT_STATUS(mh_encoder_parameter_info(encoder, count, &name, &rank, shape), MH_ERR_INVALID_ARGUMENT, "index");
    mh_encoder_destroy(encoder);
    mh_encoder_destroy(norm);
    mh_encoder_destroy(layer);
    /* Destroyed handles are rejected, destroy(NULL) is a no-op. */
    EXPECT_STATUS(mh_encoder_parameter_count(layer, &count), MH_ERR_INVALID_ARGUMENT, "mh_encoder");
    mh_encoder_destroy(NULL);
}

static void test_parameters(void) {
    mh_encoder *layer = make_layer(8, 2, 16, MH_ACTIVATION_RELU, 0);
    int32_t count = 0;
    OK(mh_encoder_parameter_count(layer, &count));
    CHECK(count == 12, "count %d", count);
    const char *expected[] = {"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                              "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                              "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"};
    for (int i = 0; i < 12; i++) {
        const char *name = NULL;
        int32_t rank;
        int64_t shape[MH_MAX_RANK];
        OK(mh_encoder_parameter_info(layer, i, &name, &rank, shape));
        CHECK(name && strcmp(name, expected[i]) == 0, "%d: %s", i, name);
    }
    float w[16 * 8], back[8 * 16];
    for (int i = 0; i < 128; i++) w[i] = (float)i / 7;
    int64_t shape[2] = {16, 8}, transposed_shape[2] = {8, 16};
    mh_tensor value = tensor(w, MH_DTYPE_F32, 2, shape);
    OK(mh_encoder_set_parameter(layer, "linear1.weight", &value));
    /* Read back through a transposed (strided) view. */
    mh_tensor out = tensor(back, MH_DTYPE_F32, 2, shape);
    out.strides[0] = 1;
    out.strides[1] = 16;
    OK(mh_encoder_get_parameter(layer, "linear1.weight", &out));
    int same = 1;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 8; c++) same &= back[c * 16 + r] == w[r * 8 + c];
    CHECK(same, "round trip through strides");
    mh_tensor wrong = tensor(w, MH_DTYPE_F32, 2, transposed_shape);
    EXPECT_STATUS(mh_encoder_set_parameter(layer, "linear1.weight", &wrong), MH_ERR_SHAPE, "[16, 8]");
    EXPECT_STATUS(mh_encoder_set_parameter(layer, "linear3.weight", &value), MH_ERR_INVALID_ARGUMENT, "linear3.weight");
    EXPECT_STATUS(mh_encoder_set_parameter(layer, NULL, &value), MH_ERR_INVALID_ARGUMENT, "name");
    value.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_encoder_set_parameter(layer, "linear1.weight", &value), MH_ERR_SHAPE, "float32");
    EXPECT_STATUS(mh_encoder_load_safetensors(layer, "/nonexistent.safetensors", NULL), MH_ERR_IO, "nonexistent");
    mh_encoder_destroy(layer);
}

/* One PyTorch fixture through the C interface only. */
static void run_fixture(const char *path) {
    st_file f;
    if (st_open(&f, path) != 0) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    int encoder_kind = config_is(&f, "kind", "encoder");
    mh_encoder_layer_config c;
    mh_encoder_layer_config_init(&c);
    c.d_model = (int64_t)config_number(&f, "d_model");
    c.nhead = (int64_t)config_number(&f, "nhead");
    c.dim_feedforward = (int64_t)config_number(&f, "dim_feedforward");
    c.activation = config_is(&f, "activation", "gelu") ? MH_ACTIVATION_GELU : MH_ACTIVATION_RELU;
    c.layer_norm_eps = config_number(&f, "layer_norm_eps");
    c.batch_first = (int32_t)config_number(&f, "batch_first");
    c.norm_first = (int32_t)config_number(&f, "norm_first");
    c.bias = (int32_t)config_number(&f, "bias");
    mh_encoder *layer = NULL, *norm = NULL, *module = NULL;
    OK(mh_encoder_layer_create(NULL, &c, &layer));
    if (encoder_kind) {
        if (config_number(&f, "norm") == 1) {
            mh_layer_norm_config n;
            mh_layer_norm_config_init(&n);
            n.normalized_shape = c.d_model;
            n.eps = config_number(&f, "norm_eps");
            n.bias = (int32_t)config_number(&f, "norm_bias");
            OK(mh_layer_norm_create(NULL, &n, &norm));
        }
        OK(mh_encoder_create(layer, (int32_t)config_number(&f, "num_layers"), norm, &module));
    } else {
        module = layer;
    }
    EXPECT_STATUS(mh_encoder_load_safetensors(module, path, "param."), MH_OK, NULL);

    char dtype[8];
    int64_t shapes[4][MH_MAX_RANK];
    int32_t ranks[4];
    void *src = st_read(&f, "src", dtype, shapes[0], &ranks[0]);
    char mask_dtype[8] = "", kpm_dtype[8] = "";
    void *mask = st_read(&f, "src_mask", mask_dtype, shapes[1], &ranks[1]);
    void *kpm = st_read(&f, "src_key_padding_mask", kpm_dtype, shapes[2], &ranks[2]);
    float *expected = st_read(&f, "expected.output", dtype, shapes[3], &ranks[3]);
    int64_t n = product(shapes[0], ranks[0]);
    float *out = malloc((size_t)n * sizeof(float));
    mh_tensor s = tensor(src, MH_DTYPE_F32, ranks[0], shapes[0]);
    mh_tensor o = tensor(out, MH_DTYPE_F32, ranks[0], shapes[0]);
    mh_tensor m, k;
    if (mask) m = tensor(mask, dtype_of(mask_dtype), ranks[1], shapes[1]);
    if (kpm) k = tensor(kpm, dtype_of(kpm_dtype), ranks[2], shapes[2]);
    int32_t is_causal = (int32_t)config_number(&f, "is_causal");
    OK(mh_encoder_forward(module, &s, mask ? &m : NULL, kpm ? &k : NULL, is_causal, &o));
    double error = relative_error(out, expected, n);
    CHECK(error < 1e-5, "%s: relative error %g", path, error);
    free(src); free(mask); free(kpm); free(expected); free(out);
    if (module != layer) mh_encoder_destroy(module);
    mh_encoder_destroy(norm);
    mh_encoder_destroy(layer);
    st_close(&f);
}

static void test_pytorch_fixtures(void) {
    char index_path[4200];
    snprintf(index_path, sizeof index_path, "%s/encoder/INDEX.json", fixtures);
    FILE *file = fopen(index_path, "rb");
    CHECK(file != NULL, "cannot open %s", index_path);
    if (!file) return;
    static char text[1 << 16];
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    int cases = 0;
    for (char *p = strchr(text, '"'); p; p = strchr(p, '"')) {
        char *end = strchr(p + 1, '"');
        if (!end) break;
        *end = '\0';
        char path[4400];
        snprintf(path, sizeof path, "%s/encoder/%s.safetensors", fixtures, p + 1);
        run_fixture(path);
        cases++;
        p = end + 1;
    }
    char seed[4400];
    snprintf(seed, sizeof seed, "%s/encoder/seed_example3.safetensors", fixtures);
    run_fixture(seed);
    CHECK(cases >= 30, "only %d fixtures in INDEX.json", cases);
}

static void test_forward_errors_and_strides(void) {
    mh_encoder *layer = make_layer(8, 2, 16, MH_ACTIVATION_GELU, 1);
    float x[2 * 5 * 8], out[2 * 5 * 8], out2[2 * 5 * 8];
    for (int i = 0; i < 80; i++) x[i] = sinf((float)i);
    int64_t shape[3] = {2, 5, 8}, bad[3] = {2, 5, 6}, kpm_shape[2] = {2, 4}, mask_shape[2] = {4, 4};
    mh_tensor s = tensor(x, MH_DTYPE_F32, 3, shape), o = tensor(out, MH_DTYPE_F32, 3, shape);
    OK(mh_encoder_forward(layer, &s, NULL, NULL, 0, &o));
    /* The same input read through (L, N, E)-style strides of a transposed copy gives the same bits. */
    float t[5 * 2 * 8];
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 5; l++)
            for (int e = 0; e < 8; e++) t[(l * 2 + n) * 8 + e] = x[(n * 5 + l) * 8 + e];
    mh_tensor strided = s;
    strided.data = t;
    strided.strides[0] = 8;
    strided.strides[1] = 16;
    mh_tensor o2 = tensor(out2, MH_DTYPE_F32, 3, shape);
    OK(mh_encoder_forward(layer, &strided, NULL, NULL, 0, &o2));
    CHECK(memcmp(out, out2, sizeof out) == 0, "strided input, same bits");

    mh_tensor wrong = tensor(x, MH_DTYPE_F32, 3, bad);
    EXPECT_STATUS(mh_encoder_forward(layer, &wrong, NULL, NULL, 0, &o), MH_ERR_SHAPE, "d_model=8");
    uint8_t kpm[8] = {0};
    mh_tensor k = tensor(kpm, MH_DTYPE_BOOL, 2, kpm_shape);
    EXPECT_STATUS(mh_encoder_forward(layer, &s, NULL, &k, 0, &o), MH_ERR_SHAPE, "src_key_padding_mask");
    float mask[16] = {0};
    mh_tensor m = tensor(mask, MH_DTYPE_F32, 2, mask_shape);
    EXPECT_STATUS(mh_encoder_forward(layer, &s, &m, NULL, 0, &o), MH_ERR_SHAPE, "src_mask");
    m.dtype = 9;
    EXPECT_STATUS(mh_encoder_forward(layer, &s, &m, NULL, 0, &o), MH_ERR_SHAPE, "mask");
    m.dtype = MH_DTYPE_F32;
    mh_tensor small = tensor(out, MH_DTYPE_F32, 3, bad);
    EXPECT_STATUS(mh_encoder_forward(layer, &s, NULL, NULL, 0, &small), MH_ERR_SHAPE, "output");
    EXPECT_STATUS(mh_encoder_forward(layer, NULL, NULL, NULL, 0, &o), MH_ERR_INVALID_ARGUMENT, "src");
    EXPECT_STATUS(mh_encoder_forward(layer, &s, NULL, NULL, 0, NULL), MH_ERR_INVALID_ARGUMENT, "output");
    mh_tensor null_data = s;
    null_data.data = NULL;
    EXPECT_STATUS(mh_encoder_forward(layer, &null_data, NULL, NULL, 0, &o), MH_ERR_INVALID_ARGUMENT, "src.data");
    mh_tensor huge = s;
    huge.shape[0] = INT64_MAX / 2;
    EXPECT_STATUS(mh_encoder_forward(layer, &huge, NULL, NULL, 0, &o), MH_ERR_OUT_OF_MEMORY, "src");
    mh_tensor rank9 = s;
    rank9.rank = 9;
    EXPECT_STATUS(mh_encoder_forward(layer, &rank9, NULL, NULL, 0, &o), MH_ERR_SHAPE, "rank");

    /* A layer norm: any rank, no masks. */
    mh_layer_norm_config n;
    mh_layer_norm_config_init(&n);
    n.normalized_shape = 8;
    mh_encoder *norm = NULL;
    OK(mh_layer_norm_create(NULL, &n, &norm));
    OK(mh_encoder_forward(norm, &s, NULL, NULL, 0, &o));
    double mean = 0, var = 0;
    for (int e = 0; e < 8; e++) mean += out[e] / 8.0;
    for (int e = 0; e < 8; e++) var += (out[e] - mean) * (out[e] - mean) / 8.0;
    CHECK(fabs(mean) < 1e-6 && fabs(var - 1) < 1e-3, "normalised row: mean %g var %g", mean, var);
    EXPECT_STATUS(mh_encoder_forward(norm, &s, &m, NULL, 0, &o), MH_ERR_INVALID_ARGUMENT, "LayerNorm");
    mh_encoder_destroy(norm);
    mh_encoder_destroy(layer);
}

typedef struct {
    mh_encoder *encoder;
    const mh_tensor *src;
    float *out;
    int64_t shape[3];
    mh_status status;
} worker_args;

static void *worker(void *arg) {
    worker_args *a = arg;
    mh_tensor o;
    mh_tensor_init_contiguous(&o, a->out, MH_DTYPE_F32, 3, a->shape);
    for (int i = 0; i < 4 && a->status == MH_OK; i++) a->status = mh_encoder_forward(a->encoder, a->src, NULL, NULL, 0, &o);
    return NULL;
}

static void test_concurrency(void) {
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.num_threads = 2;
    mh_engine *engine = NULL;
    OK(mh_engine_create(&options, &engine));
    mh_encoder_layer_config c;
    mh_encoder_layer_config_init(&c);
    c.d_model = 32;
    c.nhead = 4;
    c.dim_feedforward = 64;
    c.batch_first = 1;
    mh_encoder *layer = NULL, *encoder = NULL;
    OK(mh_encoder_layer_create(engine, &c, &layer));
    OK(mh_encoder_create(layer, 2, NULL, &encoder));
    enum { N = 3, L = 70, E = 32, THREADS = 6 };
    static float x[N * L * E], reference[N * L * E], outs[THREADS][N * L * E];
    for (int i = 0; i < N * L * E; i++) x[i] = cosf((float)i * 0.37f);
    int64_t shape[3] = {N, L, E};
    mh_tensor s = tensor(x, MH_DTYPE_F32, 3, shape), o = tensor(reference, MH_DTYPE_F32, 3, shape);
    OK(mh_encoder_forward(encoder, &s, NULL, NULL, 0, &o));
    pthread_t threads[THREADS];
    worker_args args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_args){encoder, &s, outs[i], {N, L, E}, MH_OK};
        pthread_create(&threads[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].status == MH_OK, "thread %d: %s", i, mh_status_string(args[i].status));
        CHECK(memcmp(outs[i], reference, sizeof reference) == 0, "thread %d: same bits", i);
    }
    mh_encoder_destroy(encoder);
    mh_encoder_destroy(layer);
    mh_engine_destroy(engine);
}

/* ------------------------------------------------------------------------------------------ */
/* BERT                                                                                       */

static void test_bert(void) {
    char folder[4200], expected_path[4300];
    snprintf(folder, sizeof folder, "%s/encoder/tiny_bert", fixtures);
    snprintf(expected_path, sizeof expected_path, "%s/expected.safetensors", folder);
    mh_bert *bert = NULL;
    OK(mh_bert_create(NULL, folder, &bert));
    mh_bert_config config;
    memset(&config, 0, sizeof config);
    EXPECT_STATUS(mh_bert_get_config(bert, &config), MH_ERR_INVALID_ARGUMENT, "struct_size");
    config.struct_size = sizeof config;
    OK(mh_bert_get_config(bert, &config));
    CHECK(config.hidden_size == 32 && config.num_hidden_layers == 2 && config.vocab_size == 100 &&
              config.max_position_embeddings == 40 && config.layer_norm_eps == 1e-12, "config");

    st_file f;
    CHECK(st_open(&f, expected_path) == 0, "cannot read %s", expected_path);
    char dtype[8];
    int64_t shape[MH_MAX_RANK], hidden_shape[MH_MAX_RANK], embed_shape[MH_MAX_RANK];
    int32_t rank, hidden_rank, embed_rank;
    int64_t *ids = st_read(&f, "input_ids", dtype, shape, &rank);
    int64_t *mask = st_read(&f, "attention_mask", dtype, shape, &rank);
    int64_t *types = st_read(&f, "token_type_ids", dtype, shape, &rank);
    float *hidden_expected = st_read(&f, "last_hidden_state", dtype, hidden_shape, &hidden_rank);
    float *embed_expected = st_read(&f, "embeddings", dtype, embed_shape, &embed_rank);
    const int64_t N = shape[0], L = shape[1], H = 32;
    float *hidden = malloc((size_t)(N * L * H) * sizeof(float));
    float *embeddings = malloc((size_t)(N * H) * sizeof(float));
    mh_tensor ti = tensor(ids, MH_DTYPE_I64, 2, shape), tm = tensor(mask, MH_DTYPE_I64, 2, shape);
    mh_tensor tt = tensor(types, MH_DTYPE_I64, 2, shape);
    mh_tensor th = tensor(hidden, MH_DTYPE_F32, 3, hidden_shape), te = tensor(embeddings, MH_DTYPE_F32, 2, embed_shape);
    OK(mh_bert_hidden_states(bert, &ti, &tm, &tt, &th));
    double worst = 0;
    int zeros = 1;
    for (int64_t r = 0; r < N * L; r++) {
        for (int64_t j = 0; j < H; j++) {
            if (mask[r]) worst = fmax(worst, fabs(hidden[r * H + j] - hidden_expected[r * H + j]));
            else zeros &= hidden[r * H + j] == 0;
        }
    }
    CHECK(worst < 2e-5, "hidden states differ from transformers by %g", worst);
    CHECK(zeros, "padded positions are 0");
    OK(mh_bert_embed(bert, &ti, &tm, &tt, 1, &te));
    worst = 0;
    for (int64_t i = 0; i < N * H; i++) worst = fmax(worst, fabs(embeddings[i] - embed_expected[i]));
    CHECK(worst < 1e-5, "embeddings differ from transformers by %g", worst);

    /* int32 ids, a bool mask and a transposed output view give the same values. */
    int32_t *ids32 = malloc((size_t)(N * L) * sizeof(int32_t));
    uint8_t *mask8 = malloc((size_t)(N * L));
    for (int64_t i = 0; i < N * L; i++) { ids32[i] = (int32_t)ids[i]; mask8[i] = (uint8_t)mask[i]; }
    float *transposed = malloc((size_t)(N * H) * sizeof(float));
    mh_tensor ti32 = tensor(ids32, MH_DTYPE_I32, 2, shape), tm8 = tensor(mask8, MH_DTYPE_BOOL, 2, shape);
    mh_tensor tet = tensor(transposed, MH_DTYPE_F32, 2, embed_shape);
    tet.strides[0] = 1;
    tet.strides[1] = N;
    OK(mh_bert_embed(bert, &ti32, &tm8, &tt, 1, &tet));
    int same = 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < H; j++) same &= transposed[j * N + n] == embeddings[n * H + j];
    CHECK(same, "int32 ids, bool mask, strided output: same bits");

    /* Errors name the argument. */
    EXPECT_STATUS(mh_bert_embed(bert, NULL, &tm, &tt, 1, &te), MH_ERR_INVALID_ARGUMENT, "input_ids");
    mh_tensor float_ids = ti;
    float_ids.dtype = MH_DTYPE_F32;
    EXPECT_STATUS(mh_bert_embed(bert, &float_ids, NULL, NULL, 1, &te), MH_ERR_SHAPE, "input_ids.dtype");
    mh_tensor rank1 = ti;
    rank1.rank = 1;
    EXPECT_STATUS(mh_bert_embed(bert, &rank1, NULL, NULL, 1, &te), MH_ERR_SHAPE, "2-D");
    int64_t saved = ids[1];
    ids[1] = 100;
    EXPECT_STATUS(mh_bert_embed(bert, &ti, &tm, &tt, 1, &te), MH_ERR_INVALID_ARGUMENT, "input_ids[0][1] = 100");
    ids[1] = saved;
    int64_t short_shape[2] = {N, L - 1};
    mh_tensor short_mask = tensor(mask, MH_DTYPE_I64, 2, short_shape);
    EXPECT_STATUS(mh_bert_embed(bert, &ti, &short_mask, NULL, 1, &te), MH_ERR_SHAPE, "attention_mask");
    mh_tensor bad_types = tt;
    bad_types.dtype = MH_DTYPE_BOOL;
    EXPECT_STATUS(mh_bert_embed(bert, &ti, NULL, &bad_types, 1, &te), MH_ERR_SHAPE, "token_type_ids");
    EXPECT_STATUS(mh_bert_embed(bert, &ti, &tm, &tt, 1, &th), MH_ERR_SHAPE, "embeddings must have shape");
    EXPECT_STATUS(mh_bert_hidden_states(bert, &ti, &tm, &tt, &te), MH_ERR_SHAPE, "hidden_states");
    int64_t long_shape[2] = {1, 41};
    int64_t long_ids[41] = {0};
    mh_tensor too_long = tensor(long_ids, MH_DTYPE_I64, 2, long_shape);
    float long_out[32];
    int64_t long_out_shape[2] = {1, 32};
    mh_tensor long_output = tensor(long_out, MH_DTYPE_F32, 2, long_out_shape);
    EXPECT_STATUS(mh_bert_embed(bert, &too_long, NULL, NULL, 1, &long_output), MH_ERR_SHAPE, "max_position_embeddings");
    mh_bert *missing = NULL;
    EXPECT_STATUS(mh_bert_create(NULL, "/nonexistent/model", &missing), MH_ERR_IO, "/nonexistent/model");
    EXPECT_STATUS(mh_bert_create(NULL, NULL, &missing), MH_ERR_INVALID_ARGUMENT, "folder");
    mh_bert_destroy(bert);
    EXPECT_STATUS(mh_bert_embed(bert, &ti, &tm, &tt, 1, &te), MH_ERR_INVALID_ARGUMENT, "mh_bert");
    mh_bert_destroy(NULL);
    free(ids); free(mask); free(types); free(hidden_expected); free(embed_expected);
    free(hidden); free(embeddings); free(ids32); free(mask8); free(transposed);
    st_close(&f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s Tests/MultiheadTests/Fixtures\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[1]);
    struct { const char *name; void (*run)(void); } groups[] = {
        {"encoder creation and options", test_create_and_options},
        {"encoder parameters", test_parameters},
        {"encoder fixtures vs PyTorch", test_pytorch_fixtures},
        {"encoder forward errors, strides", test_forward_errors_and_strides},
        {"encoder concurrency", test_concurrency},
        {"bert (tiny, vs transformers)", test_bert},
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        int p = passed, f = failed;
        groups[i].run();
        printf("%-34s %d passed, %d failed\n", groups[i].name, passed - p, failed - f);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
