/*
 * seed_examples.c: the two examples of the seed article ("How can I use PyTorch's
 * nn.MultiheadAttention?") on libmultihead, then the same modules checked against the outputs
 * real PyTorch computed (Tests/MultiheadTests/Fixtures/seed/example{1,2}.safetensors).
 *
 *   seed_examples [FIXTURE_DIR]     (default: Tests/MultiheadTests/Fixtures/seed)
 *
 * Exits 1 if an output differs from PyTorch's by more than 1e-5.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multihead.h"

/* Every call returns a status; on error the library's message says what went wrong. */
#define CALL(expr)                                                                         \
    do {                                                                                   \
        mh_status status_ = (expr);                                                        \
        if (status_ != MH_OK) {                                                            \
            fprintf(stderr, "%s failed: %s: %s\n", #expr, mh_status_string(status_),       \
                    mh_last_error_message());                                              \
            exit(2);                                                                       \
        }                                                                                  \
    } while (0)

/* Deterministic stand-in for torch.randn: uniform in [-1, 1). */
static uint64_t rng = 42;
static float next_random(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void fill_random(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = next_random();
}

static mh_mha *create_module(int64_t embed_dim, int64_t num_heads, int64_t kdim, int64_t vdim, int64_t qdim) {
    mh_mha_config config;
    mh_mha_config_init(&config); /* PyTorch's defaults: bias, batch_first = 0, ... */
    config.embed_dim = embed_dim;
    config.num_heads = num_heads;
    config.kdim = kdim; /* 0 = embed_dim */
    config.vdim = vdim;
    config.qdim = qdim;
    mh_mha *mha = NULL;
    CALL(mh_mha_create(NULL, &config, &mha)); /* NULL: the shared engine, one thread per core */
    return mha;
}

static void print_shape(const char *label, int32_t rank, const int64_t *shape) {
    printf("%s (", label);
    for (int32_t i = 0; i < rank; i++) printf(i ? ", %lld" : "%lld", (long long)shape[i]);
    printf(")\n");
}

/* Runs the module and returns the output (and weights when weights_out is not NULL), malloc'd. */
static float *run(mh_mha *mha, mh_tensor *q, mh_tensor *k, mh_tensor *v, const char *label, float **weights_out) {
    int32_t out_rank, w_rank;
    int64_t out_shape[MH_MAX_RANK], w_shape[MH_MAX_RANK];
    CALL(mh_mha_output_shapes(mha, q, k, v, NULL, &out_rank, out_shape, &w_rank, w_shape));
    int64_t out_count = 1, w_count = 1;
    for (int32_t i = 0; i < out_rank; i++) out_count *= out_shape[i];
    for (int32_t i = 0; i < w_rank; i++) w_count *= w_shape[i];
    float *out = malloc(sizeof(float) * (size_t)out_count), *w = malloc(sizeof(float) * (size_t)w_count);
    mh_tensor out_t, w_t;
    CALL(mh_tensor_init_contiguous(&out_t, out, MH_DTYPE_F32, out_rank, out_shape));
    CALL(mh_tensor_init_contiguous(&w_t, w, MH_DTYPE_F32, w_rank, w_shape));
    CALL(mh_mha_forward(mha, q, k, v, NULL, NULL, NULL, &out_t, &w_t));
    if (label) {
        printf("%s\n", label);
        print_shape("  Attention Output Shape:", out_rank, out_shape);
        print_shape("  Attention Weights Shape:", w_rank, w_shape);
        printf("  output[0, 0, :] = [%.5f, %.5f, %.5f, %.5f]\n", out[0], out[1], out[2], out[3]);
        printf("  weights[0, 0, :] = [%.5f, %.5f]\n", w[0], w[1]);
    }
    if (weights_out) {
        *weights_out = w;
    } else {
        free(w);
    }
    return out;
}

/* y[r, o] = x[r, :] . W[o, :] + b[o]: nn.Linear on rows of x. */
static void linear(const float *x, int64_t rows, int64_t in, const float *W, const float *b, int64_t out, float *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            float acc = b[o];
            for (int64_t i = 0; i < in; i++) acc += x[r * in + i] * W[o * in + i];
            y[r * out + o] = acc;
        }
}

/* ------------------------------------------------------------------------------------------ */
/* A minimal safetensors reader: F32 tensors by name (enough for the fixtures).               */

typedef struct {
    unsigned char *bytes;
    long size;
    char *header;
    long data_start;
} safetensors;

static int safetensors_open(safetensors *f, const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) return -1;
    fseek(file, 0, SEEK_END);
    f->size = ftell(file);
    fseek(file, 0, SEEK_SET);
    f->bytes = malloc((size_t)f->size);
    size_t got = fread(f->bytes, 1, (size_t)f->size, file);
    fclose(file);
    if ((long)got != f->size || f->size < 8) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->bytes[i];
    f->header = malloc(n + 1);
    memcpy(f->header, f->bytes + 8, n);
    f->header[n] = '\0';
    f->data_start = 8 + (long)n;
    return 0;
}

/* Tensor `name` (F32) as a descriptor over the file's bytes. */
static int safetensors_get(const safetensors *f, const char *name, mh_tensor *t) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(f->header, key);
    if (!at) return -1;
    const char *shape = strstr(at, "\"shape\":[");
    const char *offsets = strstr(at, "\"data_offsets\":[");
    if (!shape || !offsets || !strstr(at, "\"F32\"")) return -1;
    int64_t dims[MH_MAX_RANK];
    int32_t rank = 0;
    for (char *p = (char *)shape + 9; *p != ']';) {
        dims[rank++] = strtoll(p, &p, 10);
        if (*p == ',') p++;
    }
    long begin = strtol(offsets + 16, NULL, 10);
    return mh_tensor_init_contiguous(t, f->bytes + f->data_start + begin, MH_DTYPE_F32, rank, dims) == MH_OK ? 0 : -1;
}

/* Loads a fixture's parameters into a fresh module, runs it, prints the largest difference. */
static int check_fixture(const char *dir, const char *name, int64_t kdim, int64_t vdim) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    safetensors f;
    if (safetensors_open(&f, path) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    mh_mha *mha = create_module(4, 2, kdim, vdim, 0);
    /* The file also holds the inputs and PyTorch's outputs: the prefix selects the parameters. */
    CALL(mh_mha_load_safetensors(mha, path, "param."));
    mh_tensor q, k, v, expected, expected_w;
    if (safetensors_get(&f, "query", &q) || safetensors_get(&f, "key", &k) || safetensors_get(&f, "value", &v) ||
        safetensors_get(&f, "expected.output", &expected) || safetensors_get(&f, "expected.weights", &expected_w)) {
        fprintf(stderr, "%s lacks a tensor\n", path);
        return 1;
    }
    float *w = NULL;
    float *out = run(mha, &q, &k, &v, NULL, &w);
    int64_t n = expected.shape[0] * expected.shape[1] * expected.shape[2];
    int64_t nw = expected_w.shape[0] * expected_w.shape[1] * expected_w.shape[2];
    double diff = 0, wdiff = 0;
    for (int64_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)out[i] - ((float *)expected.data)[i]));
    for (int64_t i = 0; i < nw; i++) wdiff = fmax(wdiff, fabs((double)w[i] - ((float *)expected_w.data)[i]));
    int bad = !(diff <= 1e-5 && wdiff <= 1e-5);
    printf("%s vs PyTorch: max |output diff| = %.3g, max |weights diff| = %.3g%s\n", name, diff, wdiff,
           bad ? "  ** MORE THAN 1e-5 **" : "");
    free(out);
    free(w);
    free(f.bytes);
    free(f.header);
    mh_mha_destroy(mha);
    return bad;
}

int main(int argc, char **argv) {
    const char *fixtures = argc > 1 ? argv[1] : "Tests/MultiheadTests/Fixtures/seed";

    /* Example 1: basic self-attention.
     * The article's comment says "Batch size 2, sequence length 5", but with the default
     * batch_first = False the layout is (L, N, E): x of shape (2, 5, 4) is a sequence of
     * length L = 2 over a batch of N = 5, and the weights come out as (N, L, S) = (5, 2, 2). */
    float x[2 * 5 * 4];
    fill_random(x, 2 * 5 * 4);
    int64_t x_shape[3] = {2, 5, 4};
    mh_tensor xt;
    CALL(mh_tensor_init_contiguous(&xt, x, MH_DTYPE_F32, 3, x_shape));
    mh_mha *attention = create_module(4, 2, 0, 0, 0);
    free(run(attention, &xt, &xt, &xt, "Example 1: self-attention, embed_dim=4, num_heads=2, x (2, 5, 4)", NULL));
    mh_mha_destroy(attention);

    /* Example 2: different feature sizes for query, key and value. The article passes
     * qdim=8, which torch.nn.MultiheadAttention does not accept; here it is a real option:
     * q_proj_weight is then (embed_dim, qdim) = (4, 8). */
    float Wq[8 * 4], bq[8], Wk[6 * 4], bk[6], Wv[4 * 4], bv[4];
    fill_random(Wq, 32), fill_random(bq, 8), fill_random(Wk, 24), fill_random(bk, 6), fill_random(Wv, 16), fill_random(bv, 4);
    float q[10 * 8], k[10 * 6], v[10 * 4];
    linear(x, 10, 4, Wq, bq, 8, q); /* proj_q = nn.Linear(4, 8) */
    linear(x, 10, 4, Wk, bk, 6, k); /* proj_k = nn.Linear(4, 6) */
    linear(x, 10, 4, Wv, bv, 4, v); /* proj_v = nn.Linear(4, 4) */
    mh_tensor qt, kt, vt;
    CALL(mh_tensor_init_contiguous(&qt, q, MH_DTYPE_F32, 3, (int64_t[]){2, 5, 8}));
    CALL(mh_tensor_init_contiguous(&kt, k, MH_DTYPE_F32, 3, (int64_t[]){2, 5, 6}));
    CALL(mh_tensor_init_contiguous(&vt, v, MH_DTYPE_F32, 3, (int64_t[]){2, 5, 4}));
    attention = create_module(4, 2, 6, 4, 8);
    free(run(attention, &qt, &kt, &vt, "Example 2: embed_dim=4, num_heads=2, kdim=6, vdim=4, qdim=8", NULL));
    mh_mha_destroy(attention);

    /* The same configurations with PyTorch's weights and inputs (example 2 without qdim, which
     * PyTorch lacks), against PyTorch's outputs. */
    int failures = check_fixture(fixtures, "example1", 4, 4) + check_fixture(fixtures, "example2", 6, 4);
    return failures ? 1 : 0;
}
