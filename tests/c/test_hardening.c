/*
 * test_hardening.c: libmultihead under abuse, from C.
 *
 * - Validation beyond test_multihead.c: handles of the wrong kind or never created, outputs
 *   that overlap themselves or each other, sizes the machine cannot hold (broadcast inputs of
 *   2^40 batches, a 2^20 embed_dim), empty sizes, malformed .safetensors files of every kind;
 *   after each error the module must still give the same bits as before.
 * - Concurrency: 8 threads x 1000 forwards on one module and one engine (small calls that run
 *   on the calling thread and large ones that run on the workers), bit-identical to one thread;
 *   engines and modules created and destroyed from 8 threads at once.
 * - Memory: 100,000 create/forward/destroy cycles, and 2,000 engine create/destroy cycles, with
 *   the resident set size (/proc/self/statm) sampled: growth must stay under a generous bound.
 *
 *   test_hardening [--quick]     (--quick: 100 calls per thread, 10,000 cycles)
 *
 * Prints "N passed, M failed"; exits 1 on any failure. Each group runs in a child process, so a
 * trap in the library fails that group only.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "multihead.h"
#include "check.h"

static int quick;





static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Resident set size in MiB, from /proc/self/statm (its second field, in pages). */
static double rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static float random_float(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *random_floats(int64_t count) {
    float *out = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    for (int64_t i = 0; i < count; i++) out[i] = random_float();
    return out;
}


static mh_tensor tensor3(float *data, int64_t a, int64_t b, int64_t c) {
    int64_t shape[3] = {a, b, c};
    return tensor(data, MH_DTYPE_F32, 3, shape);
}

static mh_mha *module(mh_engine *engine, int64_t E, int64_t H, int add_bias_kv, int add_zero_attn) {
    mh_mha_config config;
    mh_mha_config_init(&config);
    config.embed_dim = E;
    config.num_heads = H;
    config.add_bias_kv = add_bias_kv;
    config.add_zero_attn = add_zero_attn;
    config.seed = 11;
    mh_mha *mha = NULL;
    if (mh_mha_create(engine, &config, &mha) != MH_OK) {
        fprintf(stderr, "mh_mha_create: %s\n", mh_last_error_message());
        exit(2);
    }
    return mha;
}

/* Nonzero biases, so that bias handling shows in every result. */
static void randomize_biases(mh_mha *mha, int64_t E) {
    float *bias = random_floats(3 * E);
    mh_tensor t = tensor(bias, MH_DTYPE_F32, 1, (int64_t[]){3 * E});
    OK(mh_mha_set_parameter(mha, "in_proj_bias", &t));
    t.shape[0] = E;
    OK(mh_mha_set_parameter(mha, "out_proj.bias", &t));
    free(bias);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                 */

enum { E = 8, H = 2, L = 3, S = 4, N = 2 };

/* A module and inputs whose result is known, to check that errors change nothing. */
typedef struct {
    mh_mha *mha;
    float q[L * N * E], k[S * N * E];
    float out[L * N * E], w[N * L * S];
    float expected_out[L * N * E], expected_w[N * L * S];
} fixture;

static void fixture_init(fixture *f) {
    f->mha = module(NULL, E, H, 0, 0);
    randomize_biases(f->mha, E);
    for (int i = 0; i < L * N * E; i++) f->q[i] = random_float();
    for (int i = 0; i < S * N * E; i++) f->k[i] = random_float();
    mh_tensor q = tensor3(f->q, L, N, E), k = tensor3(f->k, S, N, E);
    mh_tensor o = tensor3(f->expected_out, L, N, E), w = tensor3(f->expected_w, N, L, S);
    OK(mh_mha_forward(f->mha, &q, &k, &k, NULL, NULL, NULL, &o, &w));
}

/* The module still computes the same bits. */
static void still_same(fixture *f, const char *after) {
    mh_tensor q = tensor3(f->q, L, N, E), k = tensor3(f->k, S, N, E);
    mh_tensor o = tensor3(f->out, L, N, E), w = tensor3(f->w, N, L, S);
    mh_status s = mh_mha_forward(f->mha, &q, &k, &k, NULL, NULL, NULL, &o, &w);
    CHECK(s == MH_OK && memcmp(f->out, f->expected_out, sizeof f->out) == 0 && memcmp(f->w, f->expected_w, sizeof f->w) == 0,
          "after %s the module gives different results (%s)", after, mh_last_error_message());
}

static void test_handles(void) {
    fixture f;
    fixture_init(&f);
    mh_engine *engine = NULL;
    OK(mh_engine_create(NULL, &engine));
    mh_tensor q = tensor3(f.q, L, N, E), k = tensor3(f.k, S, N, E);
    mh_tensor o = tensor3(f.out, L, N, E), w = tensor3(f.w, N, L, S);
    int32_t count = 0;
    /* An engine where a module is expected, and the other way round. */
    EXPECT_STATUS(mh_mha_forward((mh_mha *)engine, &q, &k, &k, NULL, NULL, NULL, &o, &w), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_parameter_count((mh_mha *)engine, &count), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_engine_num_threads((mh_engine *)f.mha, &count), MH_ERR_INVALID_ARGUMENT, "engine");
    mh_mha_config config;
    mh_mha_config_init(&config);
    config.embed_dim = E;
    config.num_heads = H;
    mh_mha *other = NULL;
    EXPECT_STATUS(mh_mha_create((mh_engine *)f.mha, &config, &other), MH_ERR_INVALID_ARGUMENT, "engine");
    /* Addresses that were never handles: the stack, a heap block, a small integer. */
    char stack_bytes[64] = {0};
    void *heap = malloc(64);
    memset(heap, 0, 64);
    EXPECT_STATUS(mh_mha_forward((mh_mha *)stack_bytes, &q, &k, &k, NULL, NULL, NULL, &o, &w), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_mha_parameter_count((mh_mha *)heap, &count), MH_ERR_INVALID_ARGUMENT, "mha");
    EXPECT_STATUS(mh_engine_num_threads((mh_engine *)(uintptr_t)0x1000, &count), MH_ERR_INVALID_ARGUMENT, "engine");
    /* Destroying what is not a handle, or twice, is ignored. */
    mh_mha_destroy((mh_mha *)stack_bytes);
    mh_engine_destroy((mh_engine *)heap);
    free(heap);
    mh_mha *twice = module(engine, E, H, 0, 0);
    mh_mha_destroy(twice);
    mh_mha_destroy(twice);
    EXPECT_STATUS(mh_mha_parameter_count(twice, &count), MH_ERR_INVALID_ARGUMENT, "mha");
    mh_engine_destroy(engine);
    mh_engine_destroy(engine);
    EXPECT_STATUS(mh_engine_num_threads(engine, &count), MH_ERR_INVALID_ARGUMENT, "engine");
    still_same(&f, "bad handles");
    mh_mha_destroy(f.mha);
}

static void test_output_layouts(void) {
    fixture f;
    fixture_init(&f);
    mh_tensor q = tensor3(f.q, L, N, E), k = tensor3(f.k, S, N, E);
    float *big = malloc(sizeof(float) * 4096);
    mh_forward_options no_weights;
    mh_forward_options_init(&no_weights);
    no_weights.need_weights = 0;
    /* Elements of the output on top of each other: a zero stride, interleaved strides. */
    mh_tensor o = tensor3(big, L, N, E);
    o.strides[1] = 0;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, &no_weights, &o, NULL), MH_ERR_SHAPE, "output");
    o = tensor3(big, L, N, E);
    o.strides[0] = 1;
    o.strides[1] = 1;
    o.strides[2] = 1;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, &no_weights, &o, NULL), MH_ERR_SHAPE, "share memory");
    mh_tensor w = tensor3(big + 1024, N, L, S);
    w.strides[2] = 0;
    o = tensor3(big, L, N, E);
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, NULL, &o, &w), MH_ERR_SHAPE, "weights");
    /* Output and weights in the same memory. */
    w = tensor3(big + 10, N, L, S);
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, NULL, &o, &w), MH_ERR_SHAPE, "overlap");
    still_same(&f, "overlapping outputs");
    /* Negative strides: the same values, written backwards. */
    o = tensor3(big + L * N * E - 1, L, N, E);
    o.strides[0] = -N * E;
    o.strides[1] = -E;
    o.strides[2] = -1;
    w = tensor3(big + 2048, N, L, S);
    OK(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, NULL, &o, &w));
    int same = 1;
    for (int i = 0; i < L * N * E; i++) same &= big[L * N * E - 1 - i] == f.expected_out[i];
    CHECK(same, "output through negative strides");
    /* Broadcast inputs: the same query row for every batch equals explicit copies. */
    float *copies = malloc(sizeof(float) * L * N * E);
    for (int l = 0; l < L; l++)
        for (int n = 0; n < N; n++)
            for (int e = 0; e < E; e++) copies[(l * N + n) * E + e] = f.q[l * N * E + e];
    mh_tensor qb = tensor3(f.q, L, N, E);
    qb.strides[1] = 0;
    mh_tensor qc = tensor3(copies, L, N, E);
    float out_b[L * N * E], out_c[L * N * E];
    mh_tensor ob = tensor3(out_b, L, N, E), oc = tensor3(out_c, L, N, E);
    OK(mh_mha_forward(f.mha, &qb, &k, &k, NULL, NULL, &no_weights, &ob, NULL));
    OK(mh_mha_forward(f.mha, &qc, &k, &k, NULL, NULL, &no_weights, &oc, NULL));
    CHECK(memcmp(out_b, out_c, sizeof out_b) == 0, "a broadcast (stride 0) query equals explicit copies");
    /* need_weights = 0 leaves a weights buffer that was passed anyway untouched. */
    for (int i = 0; i < N * L * S; i++) big[3000 + i] = -7.0f;
    w = tensor3(big + 3000, N, L, S);
    OK(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, &no_weights, &oc, &w));
    int untouched = 1;
    for (int i = 0; i < N * L * S; i++) untouched &= big[3000 + i] == -7.0f;
    CHECK(untouched, "weights written although need_weights = 0");
    free(copies);
    free(big);
    still_same(&f, "strided outputs");
    mh_mha_destroy(f.mha);
}

static void test_sizes(void) {
    fixture f;
    fixture_init(&f);
    mh_forward_options no_weights;
    mh_forward_options_init(&no_weights);
    no_weights.need_weights = 0;
    float small[64] = {0};
    /* 2^40 batches that all read the same memory (stride 0): no machine has the scratch. */
    mh_tensor q = tensor3(small, 1, 1, E), o = tensor3(small + 16, 1, 1, E);
    q.shape[1] = o.shape[1] = INT64_C(1) << 40;
    q.strides[0] = q.strides[1] = o.strides[0] = o.strides[1] = 0;
    double start = now();
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &q, &q, NULL, NULL, &no_weights, &o, NULL), MH_ERR_OUT_OF_MEMORY, "memory");
    int32_t out_rank, w_rank;
    int64_t out_shape[MH_MAX_RANK], w_shape[MH_MAX_RANK];
    EXPECT_STATUS(mh_mha_output_shapes(f.mha, &q, &q, &q, NULL, &out_rank, out_shape, &w_rank, w_shape), MH_ERR_OUT_OF_MEMORY,
                  "scratch");
    /* ... and with no query rows there is nothing to compute: at once. */
    q.shape[0] = o.shape[0] = 0;
    mh_tensor kv = q;
    kv.shape[0] = 0;
    mh_mha *one_head = module(NULL, E, 1, 0, 0);
    OK(mh_mha_forward(one_head, &q, &kv, &kv, NULL, NULL, &no_weights, &o, NULL));
    mh_mha_destroy(one_head);
    CHECK(now() - start < 10, "huge empty calls took %.1f s", now() - start);
    /* An embed_dim whose parameters would take 12 TiB. */
    mh_mha_config config;
    mh_mha_config_init(&config);
    config.embed_dim = INT64_C(1) << 20;
    config.num_heads = 1;
    mh_mha *huge = NULL;
    EXPECT_STATUS(mh_mha_create(NULL, &config, &huge), MH_ERR_OUT_OF_MEMORY, "memory");
    CHECK(huge == NULL, "no handle on failure");
    config.embed_dim = E;
    config.num_heads = H;
    config.vdim = INT64_C(1) << 40;
    EXPECT_STATUS(mh_mha_create(NULL, &config, &huge), MH_ERR_OUT_OF_MEMORY, "vdim");
    /* S = INT64_MAX keys in 0 batches, plus bias_k: the key count overflows. */
    mh_mha *with_bias_kv = module(NULL, E, H, 1, 0);
    mh_tensor qe = tensor3(small, 1, 0, E), ke = tensor3(small, 1, 0, E), oe = tensor3(small + 16, 1, 0, E);
    ke.shape[0] = INT64_MAX;
    ke.strides[0] = 0;
    mh_status s = mh_mha_forward(with_bias_kv, &qe, &ke, &ke, NULL, NULL, &no_weights, &oe, NULL);
    CHECK(s == MH_ERR_OUT_OF_MEMORY || s == MH_ERR_SHAPE, "S = INT64_MAX with bias_k: %s (%s)", mh_status_string(s),
          mh_last_error_message());
    /* No keys at all: every row gets zero attention, so the output is out_proj.bias. */
    float bias[E];
    mh_tensor bias_t = tensor(bias, MH_DTYPE_F32, 1, (int64_t[]){E});
    OK(mh_mha_get_parameter(f.mha, "out_proj.bias", &bias_t));
    mh_tensor q3 = tensor3(f.q, L, N, E), none = tensor3(small, 0, N, E);
    float out[L * N * E];
    mh_tensor o3 = tensor3(out, L, N, E), w0 = tensor3(NULL, N, L, 0);
    OK(mh_mha_forward(f.mha, &q3, &none, &none, NULL, NULL, NULL, &o3, &w0));
    int is_bias = 1;
    for (int i = 0; i < L * N * E; i++) is_bias &= out[i] == bias[i % E];
    CHECK(is_bias, "S = 0 gives out_proj.bias");
    /* Zero batches with NULL data everywhere. */
    mh_tensor qn = tensor3(NULL, L, 0, E), kn = tensor3(NULL, S, 0, E), on = tensor3(NULL, L, 0, E), wn = tensor3(NULL, 0, L, S);
    OK(mh_mha_forward(f.mha, &qn, &kn, &kn, NULL, NULL, NULL, &on, &wn));
    mh_mha_destroy(with_bias_kv);
    still_same(&f, "huge and empty sizes");
    mh_mha_destroy(f.mha);
}

static void test_descriptors(void) {
    fixture f;
    fixture_init(&f);
    mh_tensor q = tensor3(f.q, L, N, E), k = tensor3(f.k, S, N, E);
    mh_tensor o = tensor3(f.out, L, N, E), w = tensor3(f.w, N, L, S);
    mh_tensor bad;
    /* Ranks the module does not take, and mismatched ranks. */
    bad = tensor(f.q, MH_DTYPE_F32, 0, NULL);
    EXPECT_STATUS(mh_mha_forward(f.mha, &bad, &k, &k, NULL, NULL, NULL, &o, &w), MH_ERR_SHAPE, "query");
    bad = tensor(f.k, MH_DTYPE_F32, 2, (int64_t[]){S, E});
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &bad, &k, NULL, NULL, NULL, &o, &w), MH_ERR_SHAPE, "key");
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &bad, NULL, NULL, NULL, &o, &w), MH_ERR_SHAPE, "value");
    /* Integer dtypes (the BERT functions' token ids) are not masks. */
    unsigned char mask_bytes[64] = {0};
    mh_tensor kpm = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){N, S});
    kpm.dtype = 3;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, &kpm, NULL, NULL, &o, &w), MH_ERR_SHAPE, "key_padding_mask");
    mh_tensor am = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){L, S});
    am.dtype = 4;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, &am, NULL, &o, &w), MH_ERR_SHAPE, "attn_mask");
    /* Masks with a NULL data pointer, a negative size, a rank past MH_MAX_RANK, a huge stride. */
    kpm = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){N, S});
    kpm.data = NULL;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, &kpm, NULL, NULL, &o, &w), MH_ERR_INVALID_ARGUMENT, "key_padding_mask");
    am = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){L, S});
    am.shape[1] = -S;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, &am, NULL, &o, &w), MH_ERR_SHAPE, "attn_mask");
    am = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){L, S});
    am.rank = 1000;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, &am, NULL, &o, &w), MH_ERR_SHAPE, "attn_mask");
    am = tensor(mask_bytes, MH_DTYPE_BOOL, 2, (int64_t[]){L, S});
    am.strides[0] = INT64_MIN;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, &am, NULL, &o, &w), MH_ERR_OUT_OF_MEMORY, "attn_mask");
    /* A 3-D attn_mask whose first size is not N * num_heads. */
    float *mask3 = calloc(N * H * L * S + 8, sizeof(float));
    am = tensor(mask3, MH_DTYPE_F32, 3, (int64_t[]){N * H + 1, L, S});
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, &am, NULL, &o, &w), MH_ERR_SHAPE, "attn_mask");
    free(mask3);
    /* Options and configs whose struct_size is from another version. */
    mh_forward_options options;
    mh_forward_options_init(&options);
    options.struct_size = sizeof options + 16;
    EXPECT_STATUS(mh_mha_forward(f.mha, &q, &k, &k, NULL, NULL, &options, &o, &w), MH_ERR_INVALID_ARGUMENT, "struct_size");
    mh_engine_options engine_options;
    mh_engine_options_init(&engine_options);
    engine_options.struct_size = 0;
    mh_engine *engine = NULL;
    EXPECT_STATUS(mh_engine_create(&engine_options, &engine), MH_ERR_INVALID_ARGUMENT, "struct_size");
    /* Parameter descriptors: wrong shape, NULL data, a shape product that overflows. */
    float values[3 * E * E];
    mh_tensor p = tensor(values, MH_DTYPE_F32, 2, (int64_t[]){3 * E, E});
    p.shape[0] = E;
    EXPECT_STATUS(mh_mha_set_parameter(f.mha, "in_proj_weight", &p), MH_ERR_SHAPE, "in_proj_weight");
    p = tensor(values, MH_DTYPE_F32, 2, (int64_t[]){3 * E, E});
    p.data = NULL;
    EXPECT_STATUS(mh_mha_get_parameter(f.mha, "in_proj_weight", &p), MH_ERR_INVALID_ARGUMENT, "data");
    p = tensor(values, MH_DTYPE_F32, 2, (int64_t[]){3 * E, E});
    p.shape[0] = INT64_MAX;
    p.shape[1] = 3;
    EXPECT_STATUS(mh_mha_set_parameter(f.mha, "in_proj_weight", &p), MH_ERR_OUT_OF_MEMORY, "overflow");
    /* A name that is not NUL-terminated where it matters: a prefix of a real name. */
    EXPECT_STATUS(mh_mha_get_parameter(f.mha, "in_proj", &p), MH_ERR_INVALID_ARGUMENT, "in_proj");
    /* NaN parameters and inputs are accepted (they are values, not errors). */
    float nan_q[L * N * E];
    memcpy(nan_q, f.q, sizeof nan_q);
    nan_q[0] = NAN;
    mh_tensor qn = tensor3(nan_q, L, N, E);
    float out[L * N * E], wts[N * L * S];
    mh_tensor on = tensor3(out, L, N, E), wn = tensor3(wts, N, L, S);
    OK(mh_mha_forward(f.mha, &qn, &k, &k, NULL, NULL, NULL, &on, &wn));
    CHECK(isnan(out[0]) && isnan(wts[0]) && !isnan(out[E]), "NaN in query row (0, 0) stays in that row");
    still_same(&f, "bad descriptors");
    mh_mha_destroy(f.mha);
}

/* ------------------------------------------------------------------------------------------ */
/* Malformed .safetensors files                                                               */

static char temp_dir[256];

static void write_file(const char *name, const void *bytes, size_t size, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/%s", temp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (size) fwrite(bytes, 1, size, f);
    fclose(f);
}

/* A file with this JSON header (padded to 8 bytes) and `data_size` bytes of data. */
static void write_safetensors(const char *name, const char *header, size_t data_size, char *path, size_t path_size) {
    size_t length = strlen(header), padded = (length + 7) / 8 * 8;
    size_t total = 8 + padded + data_size;
    unsigned char *bytes = calloc(total, 1);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(bytes + 8, header, length);
    memset(bytes + 8 + length, ' ', padded - length);
    write_file(name, bytes, total, path, path_size);
    free(bytes);
}

static void test_malformed_safetensors(void) {
    fixture f;
    fixture_init(&f);
    snprintf(temp_dir, sizeof temp_dir, "%s/mh_hardening_%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    mkdir(temp_dir, 0700);
    char path[512];
    /* A good file for this module, to make sure the bad ones differ only where they should. */
    char good[1024];
    snprintf(good, sizeof good,
             "{\"in_proj_weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%d]},"
             "\"in_proj_bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%d,%d]},"
             "\"out_proj.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%d,%d]},"
             "\"out_proj.bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%d,%d]}}",
             3 * E, E, 12 * E * E, 3 * E, 12 * E * E, 12 * E * E + 12 * E, E, E, 12 * E * E + 12 * E, 16 * E * E + 12 * E, E,
             16 * E * E + 12 * E, 16 * E * E + 16 * E);
    size_t good_data = 16 * E * E + 16 * E;
    write_safetensors("good.safetensors", good, good_data, path, sizeof path);
    OK(mh_mha_load_safetensors(f.mha, path, NULL)); /* all zeros */
    /* Put the fixture's parameters back: reload them from a module with the same seed. */
    mh_mha_destroy(f.mha);
    fixture_init(&f);

    struct {
        const char *name, *header;
        size_t data;
        mh_status status;
        const char *word;
    } cases[] = {
        {"bad_json", "{\"in_proj_weight\": {", 0, MH_ERR_FORMAT, "JSON"},
        {"not_object", "[1, 2, 3]", 0, MH_ERR_FORMAT, "object"},
        {"unknown_dtype", "{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MH_ERR_FORMAT, "F31"},
        {"size_mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, MH_ERR_FORMAT, "needs 12 bytes"},
        {"past_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, MH_ERR_FORMAT, "past the data"},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, MH_ERR_FORMAT, "overlap"},
        {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MH_ERR_FORMAT, "gap"},
        {"absurd_shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,4]}}", 4,
         MH_ERR_FORMAT, "too large"},
        {"huge_dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4, MH_ERR_FORMAT, "dimension"},
        {"negative_dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, MH_ERR_FORMAT, "dimension"},
        {"offset_past_int", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 4, MH_ERR_FORMAT, "past the data"},
        {"negative_offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, MH_ERR_FORMAT, "data_offsets"},
        {"metadata", "{\"__metadata__\":{\"format\":7}}", 0, MH_ERR_FORMAT, "__metadata__"},
        {"bool_weight", "{\"in_proj_weight\":{\"dtype\":\"BOOL\",\"shape\":[24,8],\"data_offsets\":[0,192]}}", 192,
         MH_ERR_UNSUPPORTED, "BOOL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.safetensors", cases[i].name);
        write_safetensors(name, cases[i].header, cases[i].data, path, sizeof path);
        mh_status s = mh_mha_load_safetensors(f.mha, path, NULL);
        CHECK(s == cases[i].status, "%s: %s, expected %s (%s)", cases[i].name, mh_status_string(s), mh_status_string(cases[i].status),
              mh_last_error_message());
        CHECK(strstr(mh_last_error_message(), cases[i].word) != NULL, "%s: message \"%s\" lacks \"%s\"", cases[i].name,
              mh_last_error_message(), cases[i].word);
        unlink(path);
    }
    /* Every parameter present, one of them I64: unsupported. */
    char ints[1024];
    snprintf(ints, sizeof ints, "%s", good);
    char *dtype = strstr(ints, "\"in_proj_bias\":{\"dtype\":\"F32\"");
    memcpy(dtype + strlen("\"in_proj_bias\":{\"dtype\":\""), "I32", 3);
    write_safetensors("ints.safetensors", ints, good_data, path, sizeof path);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_UNSUPPORTED, "I32");
    unlink(path);
    /* Header lengths: past the end, the largest possible, zero; an empty file; 7 bytes. */
    unsigned char raw[16] = {0};
    memset(raw, 0xFF, 8);
    write_file("all_ones.safetensors", raw, 16, path, sizeof path);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_FORMAT, "header length");
    unlink(path);
    memset(raw, 0, sizeof raw);
    write_file("zero_header.safetensors", raw, 8, path, sizeof path);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_FORMAT, "JSON");
    unlink(path);
    write_file("empty.safetensors", raw, 0, path, sizeof path);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_FORMAT, "0 bytes");
    unlink(path);
    write_file("seven.safetensors", raw, 7, path, sizeof path);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_FORMAT, "7 bytes");
    unlink(path);
    /* Every truncation of the good file. */
    write_safetensors("good.safetensors", good, good_data, path, sizeof path);
    FILE *file = fopen(path, "rb");
    size_t size = 8 + (strlen(good) + 7) / 8 * 8 + good_data;
    unsigned char *bytes = malloc(size);
    CHECK(fread(bytes, 1, size, file) == size, "read back");
    fclose(file);
    unlink(path);
    int truncated_ok = 1;
    for (size_t cut = 0; cut < size; cut += (cut < 600 ? 1 : 97)) {
        write_file("cut.safetensors", bytes, cut, path, sizeof path);
        if (mh_mha_load_safetensors(f.mha, path, NULL) != MH_ERR_FORMAT) {
            truncated_ok = 0;
            fprintf(stderr, "truncated to %zu bytes: %s\n", cut, mh_last_error_message());
        }
        unlink(path);
    }
    CHECK(truncated_ok, "every truncation is MH_ERR_FORMAT");
    free(bytes);
    /* A directory, and a path that does not exist. */
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, temp_dir, NULL), MH_ERR_IO, temp_dir);
    snprintf(path, sizeof path, "%s/missing/x.safetensors", temp_dir);
    EXPECT_STATUS(mh_mha_load_safetensors(f.mha, path, NULL), MH_ERR_IO, "missing");
    rmdir(temp_dir);
    still_same(&f, "malformed files (nothing was loaded)");
    mh_mha_destroy(f.mha);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency                                                                                */

enum { BIG_E = 64, BIG_H = 4, BIG_L = 70, BIG_S = 66, BIG_N = 2, THREADS = 8 };

typedef struct {
    const mh_mha *mha;
    const float *big_q, *big_k, *small_q;
    const float *big_out, *big_w, *small_out;
    const unsigned char *mask;
    int calls, errors, mismatches;
} job;

static void *forward_worker(void *arg) {
    job *j = arg;
    float *out = malloc(sizeof(float) * BIG_L * BIG_N * BIG_E), *w = malloc(sizeof(float) * BIG_N * BIG_L * BIG_S);
    mh_tensor bq = tensor3((float *)j->big_q, BIG_L, BIG_N, BIG_E), bk = tensor3((float *)j->big_k, BIG_S, BIG_N, BIG_E);
    mh_tensor bo = tensor3(out, BIG_L, BIG_N, BIG_E), bw = tensor3(w, BIG_N, BIG_L, BIG_S);
    mh_tensor sq = tensor((float *)j->small_q, MH_DTYPE_F32, 2, (int64_t[]){3, BIG_E});
    mh_tensor so = tensor(out, MH_DTYPE_F32, 2, (int64_t[]){3, BIG_E});
    mh_tensor mask = tensor((void *)j->mask, MH_DTYPE_BOOL, 2, (int64_t[]){BIG_N, BIG_S});
    mh_forward_options causal;
    mh_forward_options_init(&causal);
    causal.is_causal = 1;
    causal.need_weights = 0;
    for (int i = 0; i < j->calls; i++) {
        if (i % 8 == 0) { /* 1 in 8: a call large enough for the workers */
            if (mh_mha_forward(j->mha, &bq, &bk, &bk, &mask, NULL, NULL, &bo, &bw) != MH_OK) j->errors++;
            if (memcmp(out, j->big_out, sizeof(float) * BIG_L * BIG_N * BIG_E) ||
                memcmp(w, j->big_w, sizeof(float) * BIG_N * BIG_L * BIG_S))
                j->mismatches++;
        } else { /* a tiny causal call that runs on the calling thread */
            if (mh_mha_forward(j->mha, &sq, &sq, &sq, NULL, NULL, &causal, &so, NULL) != MH_OK) j->errors++;
            if (memcmp(out, j->small_out, sizeof(float) * 3 * BIG_E)) j->mismatches++;
        }
    }
    free(out);
    free(w);
    return NULL;
}

static void test_concurrent_forwards(void) {
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.num_threads = 2;
    mh_engine *engine = NULL;
    OK(mh_engine_create(&options, &engine));
    mh_mha *mha = module(engine, BIG_E, BIG_H, 0, 0);
    randomize_biases(mha, BIG_E);
    float *big_q = random_floats(BIG_L * BIG_N * BIG_E), *big_k = random_floats(BIG_S * BIG_N * BIG_E);
    float *small_q = random_floats(3 * BIG_E);
    unsigned char mask[BIG_N * BIG_S];
    for (int i = 0; i < BIG_N * BIG_S; i++) mask[i] = i % 5 == 3;
    float *big_out = malloc(sizeof(float) * BIG_L * BIG_N * BIG_E), *big_w = malloc(sizeof(float) * BIG_N * BIG_L * BIG_S);
    float small_out[3 * BIG_E];
    /* The single-thread results: the first call, made before any other thread exists. */
    job reference = {mha, big_q, big_k, small_q, NULL, NULL, NULL, mask, 0, 0, 0};
    mh_tensor bq = tensor3(big_q, BIG_L, BIG_N, BIG_E), bk = tensor3(big_k, BIG_S, BIG_N, BIG_E);
    mh_tensor bo = tensor3(big_out, BIG_L, BIG_N, BIG_E), bw = tensor3(big_w, BIG_N, BIG_L, BIG_S);
    mh_tensor mk = tensor(mask, MH_DTYPE_BOOL, 2, (int64_t[]){BIG_N, BIG_S});
    OK(mh_mha_forward(mha, &bq, &bk, &bk, &mk, NULL, NULL, &bo, &bw));
    mh_tensor sq = tensor(small_q, MH_DTYPE_F32, 2, (int64_t[]){3, BIG_E}), so = tensor(small_out, MH_DTYPE_F32, 2, (int64_t[]){3, BIG_E});
    mh_forward_options causal;
    mh_forward_options_init(&causal);
    causal.is_causal = 1;
    causal.need_weights = 0;
    OK(mh_mha_forward(mha, &sq, &sq, &sq, NULL, NULL, &causal, &so, NULL));
    (void)reference;

    int calls = quick ? 100 : 1000;
    pthread_t threads[THREADS];
    job jobs[THREADS];
    double start = now();
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){mha, big_q, big_k, small_q, big_out, big_w, small_out, mask, calls, 0, 0};
        CHECK(pthread_create(&threads[i], NULL, forward_worker, &jobs[i]) == 0, "pthread_create");
    }
    int errors = 0, mismatches = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        errors += jobs[i].errors;
        mismatches += jobs[i].mismatches;
    }
    CHECK(errors == 0, "%d failed forwards", errors);
    CHECK(mismatches == 0, "%d results differ from the single-thread result", mismatches);
    printf("  %d threads x %d forwards on one module and engine: %.2f s, %d mismatches\n", THREADS, calls, now() - start, mismatches);
    free(big_q);
    free(big_k);
    free(small_q);
    free(big_out);
    free(big_w);
    mh_mha_destroy(mha);
    mh_engine_destroy(engine);
}

typedef struct {
    int rounds, failures;
    const float *q;
    const float *expected;
} lifecycle_job;

static void *lifecycle_worker(void *arg) {
    lifecycle_job *j = arg;
    for (int r = 0; r < j->rounds; r++) {
        mh_engine_options options;
        mh_engine_options_init(&options);
        options.num_threads = 1 + r % 2;
        mh_engine *engine = NULL;
        if (mh_engine_create(&options, &engine) != MH_OK) {
            j->failures++;
            continue;
        }
        /* One module on the new engine, one on the shared default engine. */
        mh_mha *a = module(engine, E, H, 0, 0), *b = module(NULL, E, H, 0, 0);
        float out[L * N * E];
        mh_tensor q = tensor3((float *)j->q, L, N, E), o = tensor3(out, L, N, E);
        mh_forward_options options_no_w;
        mh_forward_options_init(&options_no_w);
        options_no_w.need_weights = 0;
        for (int m = 0; m < 2; m++) {
            if (mh_mha_forward(m ? b : a, &q, &q, &q, NULL, NULL, &options_no_w, &o, NULL) != MH_OK ||
                memcmp(out, j->expected, sizeof out) != 0)
                j->failures++;
        }
        mh_mha_destroy(a);
        mh_mha_destroy(b);
        mh_engine_destroy(engine);
    }
    return NULL;
}

static void test_concurrent_lifecycles(void) {
    float *q = random_floats(L * N * E);
    float expected[L * N * E];
    mh_mha *mha = module(NULL, E, H, 0, 0);
    mh_tensor qt = tensor3(q, L, N, E), o = tensor3(expected, L, N, E);
    mh_forward_options options;
    mh_forward_options_init(&options);
    options.need_weights = 0;
    OK(mh_mha_forward(mha, &qt, &qt, &qt, NULL, NULL, &options, &o, NULL));
    mh_mha_destroy(mha);
    pthread_t threads[THREADS];
    lifecycle_job jobs[THREADS];
    double start = now();
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (lifecycle_job){quick ? 10 : 50, 0, q, expected};
        CHECK(pthread_create(&threads[i], NULL, lifecycle_worker, &jobs[i]) == 0, "pthread_create");
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        failures += jobs[i].failures;
    }
    CHECK(failures == 0, "%d failures creating, using and destroying engines and modules concurrently", failures);
    printf("  %d threads x %d engine+module lifecycles: %.2f s\n", THREADS, jobs[0].rounds, now() - start);
    free(q);
}

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                     */

static void test_memory_is_flat(void) {
    int cycles = quick ? 10000 : 100000;
    float *q = random_floats(L * N * E), *k = random_floats(S * N * E);
    float out[L * N * E], w[N * L * S];
    unsigned char mask[N * S] = {0, 1, 0, 0, 1, 0, 0, 0};
    double warm = 0, peak = 0, start = now();
    for (int i = 0; i < cycles; i++) {
        mh_mha *mha = module(NULL, E, H, i % 3 == 0, i % 5 == 0);
        int64_t keys = S + (i % 3 == 0) + (i % 5 == 0);
        mh_tensor qt = tensor3(q, L, N, E), kt = tensor3(k, S, N, E), o = tensor3(out, L, N, E), wt = tensor3(w, N, L, S);
        wt.shape[2] = keys;
        wt.strides[0] = L * keys;
        wt.strides[1] = keys;
        float wide[N * L * (S + 2)];
        wt.data = wide;
        mh_tensor kpm = tensor(mask, MH_DTYPE_BOOL, 2, (int64_t[]){N, S});
        if (mh_mha_forward(mha, &qt, &kt, &kt, &kpm, NULL, NULL, &o, &wt) != MH_OK) {
            CHECK(0, "cycle %d: %s", i, mh_last_error_message());
            mh_mha_destroy(mha);
            break;
        }
        /* An error path too: its message is allocated and replaced. */
        mh_tensor bad = qt;
        bad.rank = 9;
        (void)mh_mha_forward(mha, &bad, &kt, &kt, NULL, NULL, NULL, &o, &wt);
        mh_mha_destroy(mha);
        if (i + 1 == cycles / 10) warm = rss_mib();
        if ((i + 1) % (cycles / 10) == 0) {
            double rss = rss_mib();
            if (rss > peak) peak = rss;
        }
    }
    double end = rss_mib();
    printf("  %d create/forward/destroy cycles: %.1f s; RSS %.1f MiB after %d, %.1f MiB at the end (peak %.1f)\n", cycles,
           now() - start, warm, cycles / 10, end, peak);
    /* A leak of even 100 bytes per cycle would add ~9 MiB over 90,000 cycles. */
    CHECK(end - warm < 8.0, "RSS grew by %.1f MiB over %d cycles", end - warm, cycles - cycles / 10);

    int engines = quick ? 200 : 2000;
    warm = 0;
    start = now();
    for (int i = 0; i < engines; i++) {
        mh_engine_options options;
        mh_engine_options_init(&options);
        options.num_threads = 2;
        mh_engine *engine = NULL;
        if (mh_engine_create(&options, &engine) != MH_OK) {
            CHECK(0, "engine %d: %s", i, mh_last_error_message());
            break;
        }
        mh_mha *mha = module(engine, E, H, 0, 0);
        mh_tensor qt = tensor3(q, L, N, E), o = tensor3(out, L, N, E);
        mh_forward_options no_w;
        mh_forward_options_init(&no_w);
        no_w.need_weights = 0;
        if (mh_mha_forward(mha, &qt, &qt, &qt, NULL, NULL, &no_w, &o, NULL) != MH_OK) CHECK(0, "engine forward");
        mh_mha_destroy(mha);
        mh_engine_destroy(engine);
        if (i + 1 == engines / 10) warm = rss_mib();
    }
    end = rss_mib();
    printf("  %d engine create/destroy cycles: %.1f s; RSS %.1f MiB after %d, %.1f MiB at the end\n", engines, now() - start, warm,
           engines / 10, end);
    CHECK(end - warm < 16.0, "RSS grew by %.1f MiB over %d engines", end - warm, engines - engines / 10);
    free(q);
    free(k);
}

/* ------------------------------------------------------------------------------------------ */


int main(int argc, char **argv) {
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    run_group("handles", test_handles);
    run_group("output layouts", test_output_layouts);
    run_group("huge and empty sizes", test_sizes);
    run_group("descriptors", test_descriptors);
    run_group("malformed safetensors", test_malformed_safetensors);
    run_group("concurrent forwards", test_concurrent_forwards);
    run_group("concurrent lifecycles", test_concurrent_lifecycles);
    run_group("memory", test_memory_is_flat);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
