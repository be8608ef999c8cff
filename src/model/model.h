// The decoder-only model families (Qwen2/Qwen2.5, Qwen3, Llama/Llama 3.x, SmolLM2, Gemma 2): parameters, explicit
// forward and backward passes written against the kernel interface (backend/backend.h), never against a device.
// Implementation: model/decoder.{h,cpp} (the model around its layers), decoder_layer.cpp (one layer's blocks, forward
// and backward), kv_session.cpp, model.cpp (load/save/random, Batch).
//
// CONTRACT shared by train/, eval/, generate/ and backend/cuda: keep these names; extend, don't rename.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "io/peft_adapter.h"

namespace sft::backend {
class Backend;
}

namespace sft::model {

enum class Precision { F32, BF16 };  // compute precision of matmuls; master weights, grads, norms, softmax, loss: fp32
// "float32"/"fp32" or "bfloat16"/"bf16" (as --dtype / --torch_dtype spell them); anything else throws naming flag.
Precision parse_precision(const std::string& text, const std::string& flag = "--dtype");

// A batch of B rows of T tokens (row-major [B*T]).
// labels follow the Hugging Face convention: same positions as input_ids, the model shifts them by one inside a row
// (position t is trained to predict labels[t+1]); -100 = ignored. Attention is causal and restricted to tokens of the
// same row with the same doc_id; padding tokens have doc_id -1 (they attend to nothing and nothing attends to them).
// position_ids restart at 0 for every document (packing) and every row.
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> input_ids, position_ids, doc_ids, labels;
  // Optional, one per position: the key of its row of the LoRA dropout mask (the trainer passes each token's sample
  // and offset, so a token's mask is the same in a padded, padding-free or regrouped batch); empty = the position's
  // index in the batch.
  std::vector<int64_t> dropout_keys;
  // Convenience: one unpadded sequence per row, right-padded with pad_id, positions 0.., doc id = row index.
  static Batch from_sequences(const std::vector<std::vector<int32_t>>& seqs,
                              const std::vector<std::vector<int32_t>>& labels, int32_t pad_id);
  int64_t count_targets() const;  // number of (shifted) labels != -100
};

struct LossSum {
  double sum = 0.0;        // sum of token cross-entropies (nats) over targets
  int64_t n_targets = 0;   // number of targets that contributed
};

// A trainable tensor as the optimizer sees it: fp32 master value and fp32 gradient, both in backend memory.
struct ParamRef {
  std::string name;  // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;
  float* value = nullptr;
  float* grad = nullptr;
  int64_t numel = 0;
  bool decay = true;  // false for norms and biases (no weight decay)
};

// LoRA fine-tuning (model/lora.h): the base weights are frozen (no gradient buffer, no optimizer state) and
// parameters() lists the adapter tensors (peft names) plus the tensors of modules_to_save.
struct EmbeddingNoise;  // model/neftune.h

struct LoraOptions {
  io::LoraAdapterConfig config;       // a new adapter (A kaiming-uniform from `seed`, B = 0) when adapter_dir is empty
  std::filesystem::path adapter_dir;  // non-empty: config and weights from this peft adapter folder
  uint64_t seed = 42;
  // How the frozen base is stored (model/frozen_weights.h). With bf16 compute (Precision::BF16) or load_in_4bit the
  // frozen matrices (projections, embedding, LM head) are kept once in their stored form -- bf16, or 4-bit as
  // transformers' BitsAndBytesConfig quantises them -- and read by Backend::frozen_gemm / frozen_embedding; with fp32
  // compute and no 4-bit they stay fp32 masters as before. store_dtype_bf16: the model dtype (--bf16 /
  // --torch_dtype bfloat16): the form of unquantised frozen matrices and what 4-bit values dequantise into.
  bool store_dtype_bf16 = true;
  bool load_in_4bit = false;                // --load_in_4bit
  std::string bnb_4bit_quant_type = "nf4";  // --bnb_4bit_quant_type: nf4 | fp4
  bool bnb_4bit_use_double_quant = false;   // --bnb_4bit_use_double_quant
  bool keep_fp32_base = false;  // fp32 masters (+ bf16 copy) even with bf16 compute: the former path, for comparisons
};

class Model {
 public:
  virtual ~Model() = default;

  // Loads an HF folder (config.json + safetensors); weights become fp32 masters on the backend.
  // With lora: the base is frozen and LoRA adapters are attached (new or read from lora->adapter_dir).
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, backend::Backend& be, Precision p,
                                     const LoraOptions* lora = nullptr);
  // Random init (normal(0, 0.02) matrices, norm gains 1, zero biases) for tests and benchmarks.
  static std::unique_ptr<Model> random(const io::ModelConfig& cfg, uint64_t seed, backend::Backend& be, Precision p,
                                       const LoraOptions* lora = nullptr);

  virtual const io::ModelConfig& config() const = 0;
  virtual Precision precision() const = 0;
  virtual backend::Backend& backend() = 0;

  // Training: forward + backward of one micro-batch. Gradients are ACCUMULATED (+=) into ParamRef::grad, scaled by
  // loss_scale (the trainer passes 1 / targets-in-the-whole-optimizer-step). Returns the unscaled loss sum.
  virtual LossSum forward_backward(const Batch& batch, float loss_scale) = 0;
  // Evaluation loss without gradients.
  virtual LossSum forward_loss(const Batch& batch) = 0;
  virtual void zero_grad() = 0;
  virtual std::vector<ParamRef> parameters() = 0;  // in a fixed order (HF names); tied head appears once
  // Call after the optimizer changed fp32 masters (refreshes bf16 weight copies in BF16 mode).
  virtual void on_weights_updated() = 0;
  // Gradient checkpointing (HF --gradient_checkpointing): training keeps only each layer's input and re-runs the
  // layer's forward in the backward. Same gradients bit for bit (same kernels on the same inputs); activation memory
  // drops from ~L layers' worth to one, for about one more forward pass of the layers per step.
  virtual void set_gradient_checkpointing(bool on) = 0;
  // NEFTune (model/neftune.h): the next forward_backward calls add U(-m, m) noise to the input embeddings until it is
  // set again (alpha 0 = off). Never in forward_loss, scoring, logits or generation. The default refuses alpha > 0.
  virtual void set_embedding_noise(const EmbeddingNoise& noise);
  // Sizes the training workspace for micro-batches of up to n_tokens positions (B x T) now, so that batches of
  // varying size (dynamic padding, padding-free rows) reuse it instead of reallocating; a larger batch still grows it.
  virtual void reserve_training_tokens(int64_t n_tokens) { (void)n_tokens; }

  // Scoring (eval): for every position t of every row, log p(input_ids[t+1] | prefix) and whether it was the argmax;
  // out vectors have B*T entries, the last position of each row and padding get 0 / false (so does the last token
  // of a packed document: its next token belongs to another document). is_greedy ties resolve like torch.argmax.
  // Only rows with a next token go through the LM head; the [B*T x V] logits never exist at once.
  virtual void next_token_logprobs(const Batch& batch, std::vector<float>& logprob, std::vector<uint8_t>& is_greedy) = 0;
  // Full logits [B*T, V] in fp32 (tests / small inputs only; the training path never materialises them).
  virtual std::vector<float> logits(const Batch& batch) = 0;

  // Generation with a KV cache: a session holds per-layer K/V for up to max_len positions of one sequence.
  struct KVSession {
    virtual ~KVSession() = default;
    virtual int64_t length() const = 0;
    // Appends tokens (positions length()..). Returns fp32 logits of the last appended token [V], or of every appended
    // token [n*V] when all_positions (eval scores a continuation after a cached context this way).
    virtual std::vector<float> append(const std::vector<int32_t>& tokens, bool all_positions = false) = 0;
    virtual void truncate(int64_t new_length) = 0;  // drop cached positions >= new_length
    // Scores independent continuations ("branches") of the cached sequence in ONE forward (eval: the choices of a
    // question after its context, or many questions after a shared few-shot prefix): branch b sees the cached
    // positions [0, length()) and its own earlier tokens, never another branch; the cache is left as it was.
    // Returns, per branch, fp32 logits [out_rows[b].size() * V] after each listed branch token (indices into
    // branches[b]). The default implementation (append(all_positions) + truncate per branch) is the reference.
    virtual std::vector<std::vector<float>> append_branches(const std::vector<std::vector<int32_t>>& branches,
                                                            const std::vector<std::vector<int64_t>>& out_rows);
    // Several independent documents in ONE forward (eval: ARC/HellaSwag questions, each a context whose choices are
    // branches): group g's prefix follows the cached positions, and each of its branches sees [cache | prefix_g | own
    // earlier tokens], never another group or branch; the cache is left as it was. Returns, per group and branch,
    // fp32 logits [out_rows.size() * V] after each listed branch token. The default implementation (append(prefix) +
    // append_branches + truncate per group) is the reference.
    struct Group {
      std::vector<int32_t> prefix;
      std::vector<std::vector<int32_t>> branches;
      std::vector<std::vector<int64_t>> out_rows;
    };
    virtual std::vector<std::vector<std::vector<float>>> append_groups(const std::vector<Group>& groups);
    // Batched generation (eval's generate_until): persistent branches after the cached positions [0, length()).
    // start_branches computes every prompt (non-empty) as its own branch in ONE forward and returns, per branch, the
    // fp32 logits [V] after its last prompt token; `capacity` bounds the tokens a branch will hold (prompt +
    // generated). step_branches appends tokens[b] to branch b for every entry >= 0 (-1 = idle) in ONE forward and
    // returns the logits [V] after it (empty for idle branches). A branch sees the cached positions and its own
    // tokens only. The cache must not change while the branches are in use; a new start_branches replaces them. The
    // default implementation (append(all of a branch's tokens) + truncate, per branch and step) is the reference.
    virtual std::vector<std::vector<float>> start_branches(const std::vector<std::vector<int32_t>>& prompts,
                                                           int64_t capacity);
    virtual std::vector<std::vector<float>> step_branches(const std::vector<int32_t>& tokens);

   protected:
    std::vector<std::vector<int32_t>> ref_branches_;  // the reference implementation's tokens per branch
    int64_t ref_capacity_ = 0;
  };
  virtual std::unique_ptr<KVSession> new_session(int64_t max_len) = 0;

  // Writes config.json + model.safetensors (fp32, or bf16 when dtype == "bfloat16") atomically into dir.
  // With LoRA attached these are the frozen base weights (use save_adapter for the trained part).
  virtual void save(const std::filesystem::path& dir, const std::string& dtype = "float32") = 0;

  // ---- LoRA ----
  // The attached adapter's config, or nullptr for full fine-tuning.
  virtual const io::LoraAdapterConfig* lora_config() const = 0;
  // peft's files: adapter_config.json (base_model_name_or_path = base_model) and adapter_model.safetensors (fp32,
  // peft names, the modules_to_save tensors included), each written atomically.
  virtual void save_adapter(const std::filesystem::path& dir, const std::string& base_model) = 0;
  // Seeds the LoRA dropout masks of the next forward_backward (the trainer derives it from seed, step and micro-batch,
  // so a resumed run draws the same masks). No effect without LoRA or with lora_dropout 0.
  virtual void set_dropout_seed(uint64_t seed) = 0;
  // Parameters of the model as peft's print_trainable_parameters counts them: every base parameter (tied head once)
  // plus the adapters, plus a copy of each modules_to_save tensor (peft keeps the original module beside the copy).
  virtual int64_t num_all_parameters() const = 0;
};

}  // namespace sft::model
