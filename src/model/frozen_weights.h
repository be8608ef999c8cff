// Frozen weights in their stored form: the base of a LoRA run kept once, in bf16 (2 B/param), or quantised to 4 bits
// at load exactly as bitsandbytes does (QLoRA: NF4/FP4, blocks of 64, optional double quantisation), instead of fp32
// masters. A FrozenTensor owns the device buffers of one [rows, cols] matrix and hands the kernels a
// backend::FrozenWeight view (Backend::frozen_gemm for linear layers and the tied LM head, frozen_embedding for the
// embedding gather). load_frozen streams tensors from a model folder's safetensors into that form chunk by chunk:
// peak memory is the loaded size plus one chunk, never an fp32 copy of the model.
//
// Which tensors take which form (frozen_format_for): as transformers' BitsAndBytesConfig(load_in_4bit=True) leaves a
// causal LM, the decoder layers' projections are quantised and the embedding and the (untied) LM head keep the model
// dtype; norms and biases are 1-D and stay with the model's fp32 parameters.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "io/safetensors.h"
#include "model/family.h"

namespace sft::model {

// How a LoRA / QLoRA run stores its frozen base (from --bf16 / --torch_dtype and transformers' BitsAndBytesConfig
// flags --load_in_4bit, --bnb_4bit_quant_type, --bnb_4bit_use_double_quant).
struct FrozenStorage {
  // The model dtype: the form of tensors that are not quantised, and the dtype 4-bit weights are quantised from and
  // dequantised into (bitsandbytes' quant_state.dtype: the values go through bf16 when it is bfloat16).
  backend::DType dtype = backend::DType::BF16;
  bool load_in_4bit = false;
  backend::WeightFormat quant_type = backend::WeightFormat::NF4;  // NF4 or FP4 (with load_in_4bit)
  bool double_quant = false;                                      // bnb_4bit_use_double_quant
};
// "nf4" / "fp4" as --bnb_4bit_quant_type spells it; anything else throws naming the flag.
backend::WeightFormat parse_quant_type(const std::string& text, const std::string& flag = "--bnb_4bit_quant_type");

// The stored form of a frozen tensor of this role: the decoder's projections quantised with load_in_4bit, everything
// else (embedding, LM head; norms and biases if asked) in the model dtype.
backend::WeightFormat frozen_format_for(TensorRole role, const FrozenStorage& s);

// One tensor of a bitsandbytes state dict (what a Linear4bit's state_dict() holds for its weight), host bytes.
struct QuantStateTensor {
  std::string name;
  io::DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // little-endian, C order
};

class FrozenTensor {
 public:
  FrozenTensor() = default;
  // From one tensor's fp32 values on the host (already rounded to bf16 values when the model dtype is bfloat16):
  // stored as fp32, bf16, or quantised (4-bit formats; double_quant quantises the absmax values too). Throws naming
  // the tensor for a shape that is not 2-D and non-empty, or a value that cannot be quantised (inf / NaN).
  static FrozenTensor from_values(backend::Backend& be, const std::string& name, const std::vector<int64_t>& shape,
                                  const float* values, backend::WeightFormat format, bool double_quant);
  // Allocates the buffers of a [rows, cols] tensor of `format` (filled by the streamed loader chunk by chunk).
  FrozenTensor(backend::Backend& be, const std::string& name, const std::vector<int64_t>& shape,
               backend::WeightFormat format, bool double_quant);

  const std::string& name() const { return name_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  backend::WeightFormat format() const { return view_.format; }
  bool double_quant() const { return view_.qabsmax != nullptr; }
  // The kernels' view (device pointers; valid while this tensor lives).
  const backend::FrozenWeight& view() const { return view_; }
  // Bytes of device memory this tensor holds (data + scales) = bytes_for(its format, shape, double quant).
  int64_t device_bytes() const;
  // The same figure without building a tensor, for planning (sft info): fp32 4n, bf16 2n, 4-bit ceil(n/2) + 4 per
  // 64-element block, or with double quantisation 1 per block + 4 per 256 blocks.
  static int64_t bytes_for(backend::WeightFormat format, int64_t rows, int64_t cols, bool double_quant);

  // Elements [e0, e1) as fp32 on the host (dequantised; round_bf16: rounded as w_dt == BF16 rounds) — tests, merge.
  std::vector<float> to_host(int64_t e0, int64_t e1, bool round_bf16) const;
  // The quant state as bitsandbytes' Params4bit + QuantState.as_dict(packed=True) store it in a state dict, under
  // `<name>` (uint8 [(n + 1) / 2, 1]), `<name>.absmax`, `<name>.quant_map`, `<name>.nested_absmax`,
  // `<name>.nested_quant_map` (double quantisation) and `<name>.quant_state.bitsandbytes__<type>` (JSON bytes);
  // torch_dtype names the dtype it was quantised from ("bfloat16"). 4-bit tensors only. QLoRA checkpoints never store
  // the base; this is for a later full save of a quantised model.
  std::vector<QuantStateTensor> bnb_state(const std::string& torch_dtype) const;

  // ---- used by the streamed loader: write parts of the stored form ----
  // Quantises (4-bit) or stores (F32/BF16) values of elements [e0, e0 + n); e0 a multiple of kQuantBlock.
  // 4-bit absmax values are kept on the host until finish() (double quantisation needs all of them).
  void store_chunk(int64_t e0, int64_t n, const float* values);
  void store_bf16_chunk(int64_t e0, int64_t n, const uint16_t* values);  // BF16 tensors: no conversion
  // 4-bit: uploads the scales (double-quantising them first when asked). Called once, after the last chunk.
  void finish();

 private:
  backend::Backend* be_ = nullptr;
  std::string name_;
  std::vector<int64_t> shape_;
  backend::DeviceBuffer<uint8_t> data_, qabsmax_;
  backend::DeviceBuffer<float> absmax_, nested_;
  std::vector<float> host_absmax_;  // 4-bit, while loading
  bool want_double_quant_ = false;
  backend::FrozenWeight view_;
};

// A tensor to load into its stored form.
struct FrozenSpec {
  std::string name;
  std::vector<int64_t> shape;
  backend::WeightFormat format = backend::WeightFormat::BF16;
};

// Streamed loading: each spec's tensor is read from the store's memory-mapped safetensors (any of F32 / BF16 / F16,
// sharded or not) in chunks of chunk_elements, converted to its stored form (rounded to bf16 first when
// source_dtype is BF16: transformers loads the checkpoint in torch_dtype before bitsandbytes quantises it), uploaded,
// and the chunk's file pages are released behind it (WeightStore::release). Shapes are checked against the specs.
// Peak memory ~ the stored form of everything loaded + one chunk. progress (optional) is called after each tensor.
std::vector<FrozenTensor> load_frozen(const io::WeightStore& store, const std::vector<FrozenSpec>& specs,
                                      backend::Backend& be, backend::DType source_dtype, bool double_quant,
                                      int64_t chunk_elements = int64_t{1} << 22,
                                      const std::function<void(size_t done, size_t total)>& progress = {});

}  // namespace sft::model
