/*
 * C tests of the engine API: options (including their first layout), policies and their errors,
 * mh_engine_describe, and same bits on a synthetic two-node topology.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude tests/c/test_engine.c -o build/tests-c/test_engine \
 *      -Lbuild/lib -lmultihead -Wl,-rpath,$PWD/build/lib && build/tests-c/test_engine
 */
#include <multihead.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(condition) do { \
    if (!(condition)) { fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, \
                                #condition, mh_last_error_message()); failures++; } } while (0)

/* Expects mh_engine_create to fail with `status` and a message containing `fragment`. */
static void expect_error(const mh_engine_options *options, mh_status status, const char *fragment, int line) {
    mh_engine *engine = NULL;
    mh_status got = mh_engine_create(options, &engine);
    if (got != status || engine != NULL || strstr(mh_last_error_message(), fragment) == NULL) {
        fprintf(stderr, "line %d: expected %s with \"%s\", got %s: %s\n", line, mh_status_string(status), fragment,
                mh_status_string(got), mh_last_error_message());
        failures++;
    }
    mh_engine_destroy(engine);
}

static void test_options_and_errors(void) {
    mh_engine_options options;
    mh_engine_options_init(&options);
    CHECK(options.struct_size == sizeof(mh_engine_options));
    CHECK(options.num_threads == 0 && options.policy == MH_POLICY_DEFAULT && options.executor == MH_EXECUTOR_DEFAULT);
    CHECK(options.mirror_weights == -1 && options.cpuset == NULL && options.topology_synthetic == NULL);
    CHECK(options.scratch_limit_bytes == 0);

    /* The first layout (struct_size 8: only num_threads) is still accepted. */
    struct { uint32_t struct_size; int32_t num_threads; } v1 = { 8, 1 };
    mh_engine *engine = NULL;
    CHECK(mh_engine_create((const mh_engine_options *)(const void *)&v1, &engine) == MH_OK);
    int32_t threads = 0;
    CHECK(mh_engine_num_threads(engine, &threads) == MH_OK && threads == 1);
    mh_engine_destroy(engine);

    /* The second layout (without scratch_limit_bytes), in a buffer of exactly its size followed
     * by a canary: the old init symbol and the sized init write only that layout, and creating
     * an engine reads only that layout (the canary, where scratch_limit_bytes would be, is not a
     * valid limit). */
    enum { V2 = offsetof(mh_engine_options, scratch_limit_bytes) };
    struct { unsigned char bytes[V2]; unsigned char canary[16]; } old;
    for (int way = 0; way < 2; way++) {
        memset(&old, 0xAB, sizeof old);
        if (way == 0) (mh_engine_options_init)((mh_engine_options *)(void *)old.bytes);  /* the symbol, not the macro */
        else mh_engine_options_init_sized((mh_engine_options *)(void *)old.bytes, V2);
        int canary_intact = 1;
        for (int i = 0; i < 16; i++) canary_intact &= old.canary[i] == 0xAB;
        CHECK(canary_intact);
        mh_engine_options v2;
        memcpy(&v2, old.bytes, V2);
        CHECK(v2.struct_size == V2 && v2.num_threads == 0 && v2.mirror_weights == -1 && v2.topology_xml == NULL);
        ((mh_engine_options *)(void *)old.bytes)->num_threads = 1;
        CHECK(mh_engine_create((const mh_engine_options *)(const void *)old.bytes, &engine) == MH_OK);
        mh_engine_destroy(engine);
    }
    /* The sized init refuses sizes that are not a layout's, writing nothing. */
    mh_engine_options untouched;
    memset(&untouched, 0x5A, sizeof untouched);
    mh_engine_options_init_sized(&untouched, 12);
    CHECK(untouched.struct_size == 0x5A5A5A5Au);
    mh_engine_options_init_sized(NULL, sizeof(mh_engine_options));  /* harmless */

    mh_engine_options bad = options;
    bad.scratch_limit_bytes = -2;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "scratch_limit_bytes is -2", __LINE__);
    bad.struct_size = 12;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "struct_size is 12", __LINE__);
    bad = options; bad.policy = 9;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "not an mh_policy", __LINE__);
    bad = options; bad.executor = 7;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "not an mh_executor", __LINE__);
    bad = options; bad.policy = MH_POLICY_CPUSET;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "cpuset is NULL", __LINE__);
    bad.cpuset = "";
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "cpuset is empty", __LINE__);
    bad.cpuset = "4000";
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "does not have", __LINE__);
    bad.cpuset = "0-x";
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "invalid CPU list", __LINE__);
    bad.cpuset = "0"; bad.num_threads = 2;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "binds threads to 1 PU", __LINE__);
    bad = options; bad.policy = MH_POLICY_DISTRIBUTE; bad.num_threads = 4096;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "4096 threads requested", __LINE__);
    bad = options; bad.cpuset = "0";
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "not MH_POLICY_CPUSET", __LINE__);
    bad = options; bad.num_threads = -2;
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "threads must be >= 0", __LINE__);
    bad = options; bad.topology_synthetic = "package:two";
    expect_error(&bad, MH_ERR_FORMAT, "invalid synthetic topology", __LINE__);
    bad = options; bad.topology_xml = "/nonexistent/topology.xml";
    expect_error(&bad, MH_ERR_IO, "cannot read topology XML file", __LINE__);
    bad.topology_synthetic = "numa:2 core:1 pu:1";
    expect_error(&bad, MH_ERR_INVALID_ARGUMENT, "both set", __LINE__);
    CHECK(mh_engine_create(&options, NULL) == MH_ERR_INVALID_ARGUMENT);

    /* Lenient default: more threads than PUs (on machines with fewer than 64) runs unbound. */
    mh_engine_options many = options;
    many.num_threads = 64;
    CHECK(mh_engine_create(&many, &engine) == MH_OK);
    CHECK(mh_engine_num_threads(engine, &threads) == MH_OK && threads == 64);
    mh_engine_destroy(engine);
}

static void test_describe(void) {
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.topology_synthetic = "package:2 numa:1 core:2 pu:1";
    mh_engine *engine = NULL;
    CHECK(mh_engine_create(&options, &engine) == MH_OK);
    const char *json = NULL;
    CHECK(mh_engine_describe(engine, NULL, &json) == MH_OK && json != NULL);
    if (json) {
        CHECK(strstr(json, "\"numa_nodes\":[") != NULL);
        CHECK(strstr(json, "\"threads\":4") != NULL);
        CHECK(strstr(json, "\"plan\":null") != NULL);
    }
    mh_plan_shape shape;
    mh_plan_shape_init(&shape);
    CHECK(shape.struct_size == sizeof(mh_plan_shape) && shape.batch == 0 && shape.need_weights == 0);
    shape.batch = 8; shape.num_heads = 12; shape.seq_len = 128;
    CHECK(mh_engine_describe(engine, &shape, &json) == MH_OK);
    if (json) {
        CHECK(strstr(json, "\"name\":\"attention\"") != NULL);
        CHECK(strstr(json, "\"batches\":[[0,4]]") != NULL);
        CHECK(strstr(json, "\"batches\":[[4,8]]") != NULL);
    }
    shape.embed_dim = 100;  /* not a multiple of 12 */
    CHECK(mh_engine_describe(engine, &shape, &json) == MH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mh_last_error_message(), "multiple of heads") != NULL);
    shape.embed_dim = 0; shape.seq_len = 0;
    CHECK(mh_engine_describe(engine, &shape, &json) == MH_ERR_INVALID_ARGUMENT);
    shape.seq_len = (int64_t)1 << 40; shape.batch = (int64_t)1 << 40;
    CHECK(mh_engine_describe(engine, &shape, &json) == MH_ERR_OUT_OF_MEMORY);
    CHECK(mh_engine_describe(engine, NULL, NULL) == MH_ERR_INVALID_ARGUMENT);
    CHECK(mh_engine_describe(NULL, NULL, &json) == MH_ERR_INVALID_ARGUMENT);
    mh_engine_destroy(engine);
}

/* Runs a seeded module on `engine`; returns the output (caller frees). */
static float *attention_output(mh_engine *engine, const float *x, int64_t L, int64_t N, int64_t E) {
    mh_mha_config config;
    mh_mha_config_init(&config);
    config.embed_dim = E; config.num_heads = 4; config.seed = 7;
    mh_mha *mha = NULL;
    if (mh_mha_create(engine, &config, &mha) != MH_OK) return NULL;
    float *out = malloc((size_t)(L * N * E) * sizeof(float));
    int64_t shape[3] = {L, N, E};
    mh_tensor q, o;
    mh_tensor_init_contiguous(&q, (void *)x, MH_DTYPE_F32, 3, shape);
    mh_tensor_init_contiguous(&o, out, MH_DTYPE_F32, 3, shape);
    mh_forward_options forward;
    mh_forward_options_init(&forward);
    forward.need_weights = 0;
    if (mh_mha_forward(mha, &q, &q, &q, NULL, NULL, &forward, &o, NULL) != MH_OK) { free(out); out = NULL; }
    mh_mha_destroy(mha);
    return out;
}

static void test_same_bits_on_two_nodes(void) {
    enum { L = 70, N = 4, E = 64 };
    static float x[L * N * E];
    for (int i = 0; i < L * N * E; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.num_threads = 1; options.policy = MH_POLICY_NONE; options.executor = MH_EXECUTOR_PLAIN;
    mh_engine *reference = NULL, *numa = NULL;
    CHECK(mh_engine_create(&options, &reference) == MH_OK);
    mh_engine_options_init(&options);
    options.topology_synthetic = "package:2 numa:1 core:2 pu:1";
    options.executor = MH_EXECUTOR_PINNED;
    CHECK(mh_engine_create(&options, &numa) == MH_OK);
    float *want = attention_output(reference, x, L, N, E), *got = attention_output(numa, x, L, N, E);
    CHECK(want != NULL && got != NULL);
    if (want && got) CHECK(memcmp(want, got, sizeof(float) * L * N * E) == 0);
    free(want); free(got);
    mh_engine_destroy(reference);
    mh_engine_destroy(numa);
}

/* A scratch limit of one byte runs one head at a time: the output matches the ungrouped one to
 * float rounding (only the output projection's sum is split), and the description reports it. */
static void test_scratch_limit_groups_heads(void) {
    enum { L = 70, N = 2, E = 64 };
    static float x[L * N * E];
    for (int i = 0; i < L * N * E; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    mh_engine_options options;
    mh_engine_options_init(&options);
    options.num_threads = 2;
    options.scratch_limit_bytes = -1;
    mh_engine *whole = NULL, *grouped = NULL;
    CHECK(mh_engine_create(&options, &whole) == MH_OK);
    options.scratch_limit_bytes = 1;
    CHECK(mh_engine_create(&options, &grouped) == MH_OK);
    const char *json = NULL;
    CHECK(mh_engine_describe(grouped, NULL, &json) == MH_OK && json && strstr(json, "\"scratch_limit\":1,") != NULL);
    CHECK(mh_engine_describe(whole, NULL, &json) == MH_OK && json && strstr(json, "\"scratch_limit\":null") != NULL);
    mh_plan_shape shape;
    mh_plan_shape_init(&shape);
    shape.batch = N; shape.num_heads = 4; shape.seq_len = L; shape.embed_dim = E;
    CHECK(mh_engine_describe(grouped, &shape, &json) == MH_OK && json && strstr(json, "\"heads_per_group\":1,") != NULL
          && strstr(json, "\"head_groups\":4") != NULL);
    float *want = attention_output(whole, x, L, N, E), *got = attention_output(grouped, x, L, N, E);
    CHECK(want != NULL && got != NULL);
    if (want && got) {
        float worst = 0;
        int differs = 0;
        for (int i = 0; i < L * N * E; i++) {
            float d = want[i] > got[i] ? want[i] - got[i] : got[i] - want[i];
            if (d > worst) worst = d;
            differs |= want[i] != got[i];
        }
        CHECK(worst < 1e-5f);
        CHECK(differs);  /* the grouped path ran: its sums round differently somewhere */
    }
    free(want); free(got);
    mh_engine_destroy(whole);
    mh_engine_destroy(grouped);
}

int main(void) {
    test_options_and_errors();
    test_describe();
    test_same_bits_on_two_nodes();
    test_scratch_limit_groups_heads();
    if (failures) {
        fprintf(stderr, "test_engine: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_engine: all checks passed\n");
    return 0;
}
