/*
 * multihead.h: the C interface of libmultihead, a multi-threaded CPU engine for multi-head
 * attention that computes what PyTorch's torch.nn.MultiheadAttention computes at inference.
 *
 * Conventions
 * - Every function returns an mh_status (MH_OK = 0, errors < 0); results come through
 *   out-pointers. After an error, mh_last_error_message() describes it on the calling thread.
 * - Handles (mh_engine, mh_mha) are opaque, made by *_create and freed by *_destroy;
 *   destroy(NULL) is a no-op. A handle that was destroyed is detected and rejected
 *   (MH_ERR_INVALID_ARGUMENT) as long as its address has not been reused by a new handle.
 * - Option structs begin with uint32_t struct_size: fill them with the *_init function, then
 *   change fields. A struct_size this library does not know is rejected.
 * - Tensors cross as mh_tensor descriptors: data pointer, dtype, rank, shape and strides (in
 *   elements, not bytes; any sign; 0 broadcasts), so both (L, N, E) and (N, L, E) layouts and
 *   strided views work without copies. The library never keeps a pointer to caller memory after
 *   a call returns.
 * - Outputs must not overlap inputs or each other.
 * - Thread safety: mh_engine and mh_mha are safe to use from several threads at once, including
 *   concurrent mh_mha_forward calls on one module (same bits as one thread). Setting parameters
 *   while another thread runs forward is safe; that forward sees the old or the new parameters.
 *   Destroying a handle while another thread uses it is not allowed.
 */
#ifndef MULTIHEAD_H
#define MULTIHEAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MH_VERSION_MAJOR 0
#define MH_VERSION_MINOR 1
#define MH_VERSION_PATCH 0
#define MH_VERSION_NUMBER (MH_VERSION_MAJOR * 10000 + MH_VERSION_MINOR * 100 + MH_VERSION_PATCH)

/* Largest tensor rank a descriptor holds. */
#define MH_MAX_RANK 8

typedef enum mh_status {
    MH_OK = 0,
    MH_ERR_INVALID_ARGUMENT = -1, /* NULL pointer, bad size or option, unknown name, bad handle */
    MH_ERR_SHAPE = -2,            /* rank, shape, dtype or stride that does not fit */
    MH_ERR_OUT_OF_MEMORY = -3,    /* allocation failed or a size product overflows */
    MH_ERR_IO = -4,               /* a file cannot be read */
    MH_ERR_FORMAT = -5,           /* a file is malformed */
    MH_ERR_UNSUPPORTED = -6,      /* valid, but not supported (e.g. an int64 safetensors weight) */
    MH_ERR_INTERNAL = -100        /* a bug: please report it */
} mh_status;

typedef enum mh_dtype {
    MH_DTYPE_F32 = 1,  /* float */
    MH_DTYPE_BOOL = 2  /* uint8_t, nonzero = true; masks only */
} mh_dtype;

/* A strided tensor view. Element (i0, i1, ...) lives at
 * ((char *)data) + (i0 * strides[0] + i1 * strides[1] + ...) * element_size. */
typedef struct mh_tensor {
    void *data;                    /* may be NULL only when the tensor has no elements */
    int32_t dtype;                 /* an mh_dtype (a fixed-size field keeps the ABI stable) */
    int32_t rank;                  /* 0 ... MH_MAX_RANK */
    int64_t shape[MH_MAX_RANK];    /* sizes, >= 0 */
    int64_t strides[MH_MAX_RANK];  /* in elements */
} mh_tensor;

/* Fills *t as a C-contiguous (row-major) view of data. Returns MH_ERR_INVALID_ARGUMENT for a
 * NULL t or shape, MH_ERR_SHAPE for a bad rank or negative size. */
mh_status mh_tensor_init_contiguous(mh_tensor *t, void *data, int32_t dtype, int32_t rank, const int64_t *shape);

/* A static English name of s, never NULL ("MH_ERR_SHAPE", ...). Thread-safe. */
const char *mh_status_string(mh_status s);

/* The message of the last error on the calling thread ("" if none). Owned by the library and
 * valid until the next call into the library on this thread. */
const char *mh_last_error_message(void);

/* MH_VERSION_NUMBER of the library that is loaded (compare with the header's). */
uint32_t mh_version_number(void);

/* ---------------------------------------------------------------------------------------- */
/* Engine: worker threads shared by modules.                                                 */

typedef struct mh_engine mh_engine;

typedef struct mh_engine_options {
    uint32_t struct_size;
    int32_t num_threads; /* 0 = one per core (default) */
} mh_engine_options;

/* Fills *options with the defaults. */
void mh_engine_options_init(mh_engine_options *options);

/* Creates an engine. options may be NULL (defaults). On success *out owns a new engine.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL out, bad struct_size, negative threads). */
mh_status mh_engine_create(const mh_engine_options *options, mh_engine **out);

/* Frees an engine. Modules created on it must be destroyed first. NULL is a no-op. */
void mh_engine_destroy(mh_engine *engine);

/* *out = the engine's worker-thread count. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT. */
mh_status mh_engine_num_threads(const mh_engine *engine, int32_t *out);

/* ---------------------------------------------------------------------------------------- */
/* Multi-head attention module: configuration plus packed parameters.                       */

typedef struct mh_mha mh_mha;

/* The constructor arguments of torch.nn.MultiheadAttention, plus qdim. */
typedef struct mh_mha_config {
    uint32_t struct_size;
    int64_t embed_dim;      /* E, required (> 0) */
    int64_t num_heads;      /* H, required (> 0, divides E) */
    float dropout;          /* kept; inference applies no dropout. Default 0 */
    int32_t bias;           /* default 1 */
    int32_t add_bias_kv;    /* default 0 */
    int32_t add_zero_attn;  /* default 0 */
    int64_t kdim;           /* 0 = embed_dim (default) */
    int64_t vdim;           /* 0 = embed_dim (default) */
    int64_t qdim;           /* 0 = embed_dim (default); not a PyTorch argument */
    int32_t batch_first;    /* default 0: inputs are (L, N, E) */
    uint64_t seed;          /* seed of the initial parameters (PyTorch's init distributions) */
} mh_mha_config;

/* Fills *config with the defaults (embed_dim and num_heads 0: set them). */
void mh_mha_config_init(mh_mha_config *config);

/* Creates a module with PyTorch-style initial parameters. engine may be NULL (a shared
 * default engine, one thread per core); the engine must outlive the module.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL config/out, bad struct_size, sizes PyTorch
 * rejects such as embed_dim not divisible by num_heads), MH_ERR_OUT_OF_MEMORY. */
mh_status mh_mha_create(mh_engine *engine, const mh_mha_config *config, mh_mha **out);

/* Frees a module. NULL is a no-op. */
void mh_mha_destroy(mh_mha *mha);

/* Number of parameters this configuration has (state_dict entries). */
mh_status mh_mha_parameter_count(const mh_mha *mha, int32_t *out);

/* Name and shape of parameter `index` (0 ... count-1), in PyTorch's state_dict order. *name
 * points into the module and lives as long as it. shape must hold MH_MAX_RANK entries.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL pointer, index out of range). */
mh_status mh_mha_parameter_info(const mh_mha *mha, int32_t index, const char **name, int32_t *rank, int64_t *shape);

/* Sets a parameter by its PyTorch state_dict name ("in_proj_weight", "q_proj_weight",
 * "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v", "out_proj.weight",
 * "out_proj.bias") from a float32 tensor of exactly the parameter's shape (any strides); the
 * values are copied. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL, unknown name),
 * MH_ERR_SHAPE (wrong shape or dtype). */
mh_status mh_mha_set_parameter(mh_mha *mha, const char *name, const mh_tensor *value);

/* Copies a parameter into a float32 tensor of exactly its shape (any strides).
 * Statuses: as mh_mha_set_parameter. */
mh_status mh_mha_get_parameter(const mh_mha *mha, const char *name, mh_tensor *out);

/* Loads every parameter from a .safetensors file (F32, F16, BF16 converted to float32), such as
 * one written by safetensors.torch.save_file(module.state_dict(), path). prefix (NULL = "") is
 * prepended to each name, e.g. "layers.0.self_attn."; other tensors are ignored. All-or-nothing.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL, missing parameter), MH_ERR_IO (unreadable),
 * MH_ERR_FORMAT (malformed file), MH_ERR_SHAPE (wrong shape), MH_ERR_UNSUPPORTED (dtype). */
mh_status mh_mha_load_safetensors(mh_mha *mha, const char *path, const char *prefix);

typedef struct mh_forward_options {
    uint32_t struct_size;
    int32_t need_weights;          /* default 1 */
    int32_t average_attn_weights;  /* default 1 */
    int32_t is_causal;             /* default 0; without attn_mask: top-left causal mask */
} mh_forward_options;

/* Fills *options with PyTorch's defaults. */
void mh_forward_options_init(mh_forward_options *options);

/* Shapes of the output and the weights for these inputs (only dtype, rank and shape of query,
 * key and value are read; data may be NULL). output_shape and weights_shape hold MH_MAX_RANK
 * entries; *weights_rank = 0 when need_weights is 0. options may be NULL (defaults).
 * Statuses: as mh_mha_forward. */
mh_status mh_mha_output_shapes(const mh_mha *mha, const mh_tensor *query, const mh_tensor *key,
                               const mh_tensor *value, const mh_forward_options *options,
                               int32_t *output_rank, int64_t *output_shape,
                               int32_t *weights_rank, int64_t *weights_shape);

/* Runs attention: output = MultiheadAttention(query, key, value, key_padding_mask, need_weights,
 * attn_mask, average_attn_weights, is_causal) in eval mode.
 *   query  (L, N, qdim), or (N, L, qdim) with batch_first, or unbatched (L, qdim); float32
 *   key    (S, N, kdim) / (N, S, kdim) / (S, kdim); float32
 *   value  (S, N, vdim) / (N, S, vdim) / (S, vdim); float32
 *   key_padding_mask  NULL, or (N, S) (unbatched (S)); bool (nonzero = masked) or float32 (added)
 *   attn_mask         NULL, or (L, S) or (N*H, L, S) (unbatched (H, L, S)); bool or float32
 *   output   float32, shape from mh_mha_output_shapes, any strides; written
 *   weights  float32 (N, L, S') averaged or (N, H, L, S') per head, S' = S + add_bias_kv +
 *            add_zero_attn; NULL when need_weights is 0; written
 * options may be NULL (defaults). A query row whose keys are all masked gets zero attention
 * (output row = out_proj.bias, weights 0), never NaN.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL pointer, bad handle or struct_size),
 * MH_ERR_SHAPE (rank, shape, dtype), MH_ERR_OUT_OF_MEMORY (sizes that overflow). */
mh_status mh_mha_forward(const mh_mha *mha, const mh_tensor *query, const mh_tensor *key,
                         const mh_tensor *value, const mh_tensor *key_padding_mask,
                         const mh_tensor *attn_mask, const mh_forward_options *options,
                         mh_tensor *output, mh_tensor *weights);

#ifdef __cplusplus
}
#endif

#endif /* MULTIHEAD_H */
