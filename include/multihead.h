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
    MH_DTYPE_BOOL = 2, /* uint8_t, nonzero = true; masks only */
    MH_DTYPE_I32 = 3,  /* int32_t; token ids and attention masks of the mh_bert functions only */
    MH_DTYPE_I64 = 4   /* int64_t; likewise */
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
/* Engine: worker threads shared by modules, one group per NUMA node.                      */
/*                                                                                          */
/* An engine reads the machine's topology with hwloc and runs one worker group per NUMA     */
/* node, its threads bound to that node's PUs; each node owns a contiguous share of every   */
/* call's batch (of its heads when the batch is smaller than the node count). Results are   */
/* bit-identical whatever the topology, policy, executor and thread count.                   */

typedef struct mh_engine mh_engine;

/* Where worker threads may run. */
typedef enum mh_policy {
    MH_POLICY_DEFAULT = 0,    /* distribute; more threads than PUs falls back to NONE, no error */
    MH_POLICY_DISTRIBUTE = 1, /* every node, threads bound to their node's PUs */
    MH_POLICY_ISOLATE = 2,    /* only the node of the thread calling mh_engine_create */
    MH_POLICY_NONE = 3,       /* no binding: the OS places the threads (any thread count) */
    MH_POLICY_CPUSET = 4      /* only the PUs of options->cpuset, grouped by node */
} mh_policy;

/* How worker threads are provided. */
typedef enum mh_executor {
    MH_EXECUTOR_DEFAULT = 0,  /* $MULTIHEAD_EXECUTOR ("pinned", "dispatch", "plain"), else PINNED */
    MH_EXECUTOR_PINNED = 1,   /* persistent bound threads: spin ~50 us between jobs, then sleep */
    MH_EXECUTOR_DISPATCH = 2, /* Dispatch's shared threads, bound for the length of each job */
    MH_EXECUTOR_PLAIN = 3     /* Dispatch without NUMA groups or binding (a measuring baseline) */
} mh_executor;

typedef struct mh_engine_options {
    uint32_t struct_size;
    int32_t num_threads;            /* 0 = one per core of the policy's PUs (default) */
    /* Added after the first release; a struct_size of 8 (that layout) is still accepted. */
    int32_t policy;                 /* an mh_policy; default MH_POLICY_DEFAULT */
    int32_t executor;               /* an mh_executor; default MH_EXECUTOR_DEFAULT */
    int32_t mirror_weights;         /* packed weights copied to every node: -1 auto (default: when
                                       there are several nodes and memory allows), 0 no, 1 yes */
    const char *cpuset;             /* MH_POLICY_CPUSET: PU list such as "0-3,8"; else NULL */
    const char *topology_synthetic; /* NULL = this machine; else an hwloc synthetic topology to
                                       plan on, e.g. "package:2 numa:1 core:2 pu:1" (no binding) */
    const char *topology_xml;       /* NULL, or an hwloc XML file (lstopo out.xml) to plan on */
    /* Added later; a struct_size of the layout without it (its offset) is still accepted. */
    int64_t scratch_limit_bytes;    /* scratch one attention call may use (projected Q/K/V, attention
                                       output, packed K/V) before it runs its heads in groups, each
                                       group within the limit (one head at least): 0 = default
                                       (32 MiB), -1 = never group, else > 0 bytes. Grouping splits
                                       the output projection's sum by group (rounding only). */
} mh_engine_options;

/* Fills the first `size` bytes of *options with the defaults and sets struct_size = size, so that
 * a program built against an older header gets its own, smaller layout and nothing past it is
 * written. `size` must be the size of one of the layouts: 8, offsetof(mh_engine_options,
 * scratch_limit_bytes) or sizeof(mh_engine_options); any other size, or a NULL options, writes
 * nothing. Call it through mh_engine_options_init below. */
void mh_engine_options_init_sized(mh_engine_options *options, size_t size);

/* The symbol programs built against the previous header call: fills the layout without
 * scratch_limit_bytes (48 bytes on LP64). Programs built against this header get the macro. */
void mh_engine_options_init(mh_engine_options *options);
/* Fills *options (this header's layout) with the defaults. */
#define mh_engine_options_init(options) mh_engine_options_init_sized((options), sizeof(mh_engine_options))

/* Creates an engine. options may be NULL (defaults); the strings are copied. On success *out
 * owns a new engine. Statuses: MH_OK; MH_ERR_INVALID_ARGUMENT (NULL out, bad struct_size,
 * negative threads, unknown policy or executor, a cpuset that is malformed, empty or names PUs
 * this machine lacks, more threads than PUs under DISTRIBUTE/ISOLATE/CPUSET, workers that
 * cannot bind, both topology fields set); MH_ERR_IO / MH_ERR_FORMAT (unreadable or invalid
 * topology); MH_ERR_OUT_OF_MEMORY (worker threads cannot start). */
mh_status mh_engine_create(const mh_engine_options *options, mh_engine **out);

/* Frees an engine. Modules created on it must be destroyed first. NULL is a no-op. */
void mh_engine_destroy(mh_engine *engine);

/* *out = the engine's worker-thread count. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT. */
mh_status mh_engine_num_threads(const mh_engine *engine, int32_t *out);

/* The size of an attention call, for mh_engine_describe. */
typedef struct mh_plan_shape {
    uint32_t struct_size;
    int64_t batch;        /* N >= 1 */
    int64_t num_heads;    /* H >= 1 */
    int64_t seq_len;      /* L >= 1 */
    int64_t source_len;   /* S; 0 = seq_len (default) */
    int64_t embed_dim;    /* E, a multiple of num_heads; 0 = 64 * num_heads (default) */
    int32_t need_weights; /* default 0 */
} mh_plan_shape;

/* Fills *shape with the defaults (batch, num_heads and seq_len 0: set them). */
void mh_plan_shape_init(mh_plan_shape *shape);

/* Describes the engine as JSON: {"topology", "numa_nodes": [...], "threads", "policy", "cpuset",
 * "executor", "mirror_weights", "caller_participates", "groups": [{"node", "workers",
 * "cpuset"}], "notes", "plan"}. With a shape (may be NULL), "plan" lists the phases of a forward
 * call of that shape and, per phase, which node and workers take which tiles ("assignments":
 * [{"node", "workers", "tiles": [[first, end)...], "batches": [[first, end)...]}]); else null.
 * *json is owned by the library, valid until the next mh_engine_describe on this thread.
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL engine or json, bad struct_size, sizes out of
 * range), MH_ERR_OUT_OF_MEMORY (sizes whose products overflow). */
mh_status mh_engine_describe(const mh_engine *engine, const mh_plan_shape *shape, const char **json);

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
 * rejects such as embed_dim not divisible by num_heads), MH_ERR_OUT_OF_MEMORY (parameters larger
 * than the machine's memory). */
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
 * MH_ERR_SHAPE (rank, shape, dtype; outputs that overlap themselves or each other),
 * MH_ERR_OUT_OF_MEMORY (sizes that overflow, or scratch larger than the machine's memory). */
mh_status mh_mha_forward(const mh_mha *mha, const mh_tensor *query, const mh_tensor *key,
                         const mh_tensor *value, const mh_tensor *key_padding_mask,
                         const mh_tensor *attn_mask, const mh_forward_options *options,
                         mh_tensor *output, mh_tensor *weights);

/* ---------------------------------------------------------------------------------------- */
/* Encoder modules: torch.nn.TransformerEncoderLayer, torch.nn.TransformerEncoder, LayerNorm. */
/*                                                                                            */
/* One handle type, mh_encoder, for the three modules; the parameter and forward functions    */
/* below take any of them. Parameters go by PyTorch's state_dict names: a layer has            */
/* "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",          */
/* "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",              */
/* "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias" (no biases       */
/* with bias = 0); an encoder "layers.0.self_attn.in_proj_weight", ..., "norm.weight",         */
/* "norm.bias"; a layer norm "weight", "bias". Thread safety as for mh_mha.                   */

typedef struct mh_encoder mh_encoder;

typedef enum mh_activation {
    MH_ACTIVATION_RELU = 0,  /* "relu" */
    MH_ACTIVATION_GELU = 1   /* "gelu": exact, erf-based */
} mh_activation;

/* The constructor arguments of torch.nn.TransformerEncoderLayer. */
typedef struct mh_encoder_layer_config {
    uint32_t struct_size;
    int64_t d_model;          /* required (> 0) */
    int64_t nhead;            /* required (> 0, divides d_model) */
    int64_t dim_feedforward;  /* default 2048 */
    float dropout;            /* default 0.1; kept, inference applies no dropout */
    int32_t activation;       /* an mh_activation; default MH_ACTIVATION_RELU */
    double layer_norm_eps;    /* default 1e-5 */
    int32_t batch_first;      /* default 0: src is (L, N, E) */
    int32_t norm_first;       /* default 0: post-norm */
    int32_t bias;             /* default 1: biases in the attention, linear and norm layers */
    uint64_t seed;            /* seed of the initial parameters (PyTorch's init distributions) */
} mh_encoder_layer_config;

/* Fills *config with PyTorch's defaults (d_model and nhead 0: set them). */
void mh_encoder_layer_config_init(mh_encoder_layer_config *config);

/* Creates a TransformerEncoderLayer. engine may be NULL (the shared default engine) and must
 * outlive the module. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL config/out, bad
 * struct_size, sizes or options PyTorch rejects), MH_ERR_OUT_OF_MEMORY. */
mh_status mh_encoder_layer_create(mh_engine *engine, const mh_encoder_layer_config *config, mh_encoder **out);

/* The constructor arguments of torch.nn.LayerNorm over the last dimension. */
typedef struct mh_layer_norm_config {
    uint32_t struct_size;
    int64_t normalized_shape;    /* required (> 0): the size of the last dimension */
    double eps;                  /* default 1e-5 */
    int32_t elementwise_affine;  /* default 1: a "weight" parameter (ones) */
    int32_t bias;                /* default 1: a "bias" parameter (zeros), with elementwise_affine */
} mh_layer_norm_config;

/* Fills *config with PyTorch's defaults (normalized_shape 0: set it). */
void mh_layer_norm_config_init(mh_layer_norm_config *config);

/* Creates a LayerNorm. Statuses: as mh_encoder_layer_create. */
mh_status mh_layer_norm_create(mh_engine *engine, const mh_layer_norm_config *config, mh_encoder **out);

/* Creates TransformerEncoder(layer, num_layers, norm): num_layers copies of `layer` (its
 * configuration and current parameters, as PyTorch deep-copies it), then the final norm (NULL =
 * none; its configuration and parameters are copied too). The new module runs on layer's engine;
 * layer and norm stay owned by the caller. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL,
 * handles of the wrong kind, num_layers < 1, a norm whose size is not d_model). */
mh_status mh_encoder_create(const mh_encoder *layer, int32_t num_layers, const mh_encoder *norm, mh_encoder **out);

/* Frees a module. NULL is a no-op. */
void mh_encoder_destroy(mh_encoder *encoder);

/* Parameters: as the mh_mha_parameter_* functions (names live as long as the module). */
mh_status mh_encoder_parameter_count(const mh_encoder *encoder, int32_t *out);
mh_status mh_encoder_parameter_info(const mh_encoder *encoder, int32_t index, const char **name, int32_t *rank,
                                    int64_t *shape);
mh_status mh_encoder_set_parameter(mh_encoder *encoder, const char *name, const mh_tensor *value);
mh_status mh_encoder_get_parameter(const mh_encoder *encoder, const char *name, mh_tensor *out);

/* Loads every parameter from a .safetensors file, reading prefix + name (prefix NULL = ""),
 * e.g. one written by safetensors.torch.save_file(module.state_dict(), path). All-or-nothing.
 * Statuses: as mh_mha_load_safetensors. */
mh_status mh_encoder_load_safetensors(mh_encoder *encoder, const char *path, const char *prefix);

/* Runs the module at inference, output = module(src, mask, src_key_padding_mask, is_causal):
 *   src      (L, N, E), or (N, L, E) with batch_first, or unbatched (L, E); float32, any strides.
 *            A layer norm takes any rank >= 1 whose last size is normalized_shape.
 *   mask     NULL, or (L, L) or (N*nhead, L, L); bool (nonzero = masked) or float32 (added).
 *            The layer's src_mask, the encoder's mask; NULL for a layer norm.
 *   src_key_padding_mask  NULL, or (N, L) (unbatched (L)); bool or float32. NULL for a layer norm.
 *   is_causal  a hint when mask is given; without mask, 1 applies a top-left causal mask.
 *   output   float32 of src's shape, any strides; written. Every position is computed, padded
 *            ones included (PyTorch with enable_nested_tensor=False).
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL, bad handle, masks given to a layer norm),
 * MH_ERR_SHAPE (rank, shape, dtype), MH_ERR_OUT_OF_MEMORY (sizes that overflow). */
mh_status mh_encoder_forward(const mh_encoder *encoder, const mh_tensor *src, const mh_tensor *mask,
                             const mh_tensor *src_key_padding_mask, int32_t is_causal, mh_tensor *output);

/* ---------------------------------------------------------------------------------------- */
/* BERT-family encoders from a Hugging Face checkpoint folder (config.json + model.safetensors), */
/* e.g. sentence-transformers' all-MiniLM-L6-v2: token ids in, hidden states or sentence        */
/* embeddings (mean pooling over the attention mask, optionally L2-normalised) out.             */
/* Tokenisation is the caller's (e.g. the checkpoint's tokenizer.json with HF tokenizers).      */

typedef struct mh_bert mh_bert;

typedef struct mh_bert_config {
    uint32_t struct_size;              /* set by the caller to sizeof(mh_bert_config) */
    int64_t hidden_size;               /* H: the size of hidden states and embeddings */
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t intermediate_size;
    int64_t max_position_embeddings;   /* the longest sequence */
    int64_t vocab_size;                /* input ids are in [0, vocab_size) */
    int64_t type_vocab_size;           /* token type ids are in [0, type_vocab_size) */
    int64_t pad_token_id;
    double layer_norm_eps;
} mh_bert_config;

/* Loads folder/config.json and folder/model.safetensors (names with or without "bert.").
 * engine may be NULL (the shared default engine). Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT
 * (NULL, a tensor missing), MH_ERR_IO (folder or files unreadable), MH_ERR_FORMAT (malformed
 * files), MH_ERR_SHAPE (a tensor of the wrong shape), MH_ERR_UNSUPPORTED (not a BERT model). */
mh_status mh_bert_create(mh_engine *engine, const char *folder, mh_bert **out);

/* Frees a model. NULL is a no-op. */
void mh_bert_destroy(mh_bert *bert);

/* Copies the model's configuration into *out (out->struct_size must be set).
 * Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT. */
mh_status mh_bert_get_config(const mh_bert *bert, mh_bert_config *out);

/* The last hidden states.
 *   input_ids       (N, L) MH_DTYPE_I64 or MH_DTYPE_I32, any strides; in [0, vocab_size)
 *   attention_mask  NULL (all tokens real), or (N, L) I64, I32, BOOL or F32: nonzero = a real
 *                   token, 0 = padding (ignored as a key and in pooling)
 *   token_type_ids  NULL (all 0), or (N, L) I64 or I32
 *   output          (N, L, H) float32, any strides; 0 at padded positions
 * L <= max_position_embeddings. Statuses: MH_OK, MH_ERR_INVALID_ARGUMENT (NULL, bad handle, an
 * id out of range), MH_ERR_SHAPE (rank, shape, dtype), MH_ERR_OUT_OF_MEMORY. */
mh_status mh_bert_hidden_states(const mh_bert *bert, const mh_tensor *input_ids, const mh_tensor *attention_mask,
                                const mh_tensor *token_type_ids, mh_tensor *output);

/* Sentence embeddings: the mean of the hidden states over the real tokens (0 for a sequence
 * with none), divided by max(L2 norm, 1e-12) when normalize is nonzero: what
 * sentence-transformers computes. output is (N, H) float32, any strides.
 * Statuses: as mh_bert_hidden_states. */
mh_status mh_bert_embed(const mh_bert *bert, const mh_tensor *input_ids, const mh_tensor *attention_mask,
                        const mh_tensor *token_type_ids, int32_t normalize, mh_tensor *output);

#ifdef __cplusplus
}
#endif

#endif /* MULTIHEAD_H */
