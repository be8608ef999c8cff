// Truncation report and batching: dynamic padding, group_by_length, packing, seeded per-epoch shuffling, resumable
// position, and target counting ahead of time (the trainer divides the loss of an optimizer step by its targets).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/packing.h"
#include "data/template.h"

namespace sft::data {

// ---- truncation -------------------------------------------------------------------------------------------------
enum class Truncation {
  Right,  // keep the first max_seq_length tokens (targets past the cut are lost)
  Drop,   // remove samples longer than max_seq_length
  Split,  // keep them whole: --packing_strategy wrapped cuts them across rows (not a --truncation value)
};
Truncation parse_truncation(std::string_view name);  // "right" | "drop"

struct TruncationReport {
  int64_t samples = 0;                  // before truncation
  int64_t max_seq_length = 0;
  // Token-length percentiles of the untruncated samples (nearest-rank: the smallest length L such that at least
  // p% of samples have length <= L); 0 when there are no samples.
  int64_t p50 = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
  double mean = 0.0;
  int64_t over_length = 0;              // samples longer than max_seq_length
  int64_t target_tokens = 0;            // targets before truncation
  int64_t target_tokens_dropped = 0;    // targets removed by cutting (Right) or by dropping samples (Drop)
  int64_t samples_without_targets = 0;  // Right: samples whose targets were ALL cut (they are removed, counted here)
  int64_t samples_removed = 0;          // Drop: over_length; Right: samples_without_targets
  int64_t samples_kept = 0;
};

// Truncates/drops in place (order kept) and reports. A sample left with no target is removed in both modes
// (it would add nothing to the loss and only cost compute).
TruncationReport apply_truncation(std::vector<Sample>& samples, int64_t max_seq_length, Truncation mode);

// ---- batches ----------------------------------------------------------------------------------------------------
// Same fields and meaning as sft::model::Batch (model/model.h), which the trainer copies it into: B rows of T tokens,
// row-major. labels in HF convention, -100 ignored; the first token of every document has label -100, so the
// shift never crosses documents and count_targets() equals the model's shifted count. Padding: input id pad_id,
// label -100, doc id -1, position 0. position_ids restart at 0 for every document; doc ids are numbered 0,1,.. per
// row in order (attention is restricted to equal doc ids).
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> input_ids, position_ids, doc_ids, labels;
  // Where each position comes from: (sample index << 32) | the token's offset in that sample; -1 on padding. It
  // names a token whatever row or micro-batch it lands in (LoRA dropout masks follow it: train/trainer.cpp).
  std::vector<int64_t> origins;
  std::vector<int32_t> sample_indices;  // which samples are in the batch (row-major, packing order)
  int64_t count_targets() const;
};

// Padding-free form of a right-padded batch: its rows laid end to end in ONE row of all their real tokens (B = 1,
// T = the real tokens), each document keeping its positions (restarting at 0) and its labels (its first token
// masked), doc ids renumbered 0, 1, .. along the row so attention stays inside each document. The same samples and
// targets as `padded`, no padding position. (TRL's padding_free collator, with sft's doc ids for attention.)
Batch remove_padding(const Batch& padded);
// Real (non-padding) positions of a batch: doc id >= 0.
int64_t count_real_tokens(const Batch& b);

struct LoaderOptions {
  int64_t batch_size = 1;        // rows per micro-batch
  int64_t max_seq_length = 1024;  // packing: row capacity; otherwise only checked (samples must be truncated first)
  bool shuffle = true;           // false: dataset order (evaluation)
  bool group_by_length = false;  // HF LengthGroupedSampler: megabatches of mult*batch sorted by length, longest first
  bool packing = false;          // samples packed into rows of max_seq_length (data/packing.h)
  PackingStrategy packing_strategy = PackingStrategy::Bfd;  // with packing: TRL's bfd (default) | wrapped | first_fit
  bool drop_last = false;        // drop the last incomplete micro-batch of each epoch
  uint64_t seed = 42;
  int32_t pad_id = 0;
};

// Where the loader is: the next micro-batch to hand out is number `index` (0-based) of epoch `epoch` (0-based).
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const LoaderPosition&) const = default;
};

// Hands out micro-batches forever (epoch after epoch). An epoch's order is a pure function of (samples, options,
// epoch), so saving position() in a checkpoint and calling seek() on a fresh loader resumes exactly.
// With packing, samples are packed ONCE at construction, so every epoch has the same rows and the same number of
// micro-batches; each epoch then shuffles the packed rows.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const std::vector<Sample>> samples, const LoaderOptions& opts);

  int64_t batches_per_epoch() const;
  int64_t rows_per_epoch() const;  // samples (or packed rows) per epoch, before drop_last
  LoaderPosition position() const { return pos_; }
  int32_t pad_id() const { return opts_.pad_id; }  // input id of padding positions
  int64_t batch_size() const { return opts_.batch_size; }  // rows per micro-batch
  void seek(const LoaderPosition& pos);  // throws when index >= batches_per_epoch()

  Batch next();  // the batch at position(), then advances (to the next epoch after the last batch)
  Batch peek(int64_t ahead = 0) const;  // the batch `ahead` micro-batches after position(), without advancing
  // Target tokens of the next k micro-batches (k entries, crossing epochs as next() would), without building them.
  std::vector<int64_t> targets_ahead(int64_t k) const;

  // The rows of one epoch in order: each row is the list of sample indices it holds (one unless packing; with
  // wrapped packing a sample cut at a row end is listed in both rows). A copy.
  std::vector<std::vector<int32_t>> epoch_rows(int64_t epoch) const;
  // The rows of one epoch in order as pieces of samples (data/packing.h). A copy.
  std::vector<PackedRow> epoch_pieces(int64_t epoch) const { return rows_of_epoch(epoch); }
  // Tokens of each row of one epoch, in order (what a micro-batch of those rows computes without padding).
  std::vector<int64_t> epoch_row_lengths(int64_t epoch) const;

 private:
  // Cached (one epoch at a time); the reference is valid until another epoch is asked for. Not thread-safe.
  const std::vector<PackedRow>& rows_of_epoch(int64_t epoch) const;
  Batch build(int64_t epoch, int64_t index) const;
  int64_t piece_targets(const Piece& p) const;  // targets of a piece once build() masks its first token
  std::shared_ptr<const std::vector<Sample>> samples_;
  LoaderOptions opts_;
  std::vector<PackedRow> base_rows_;  // packed rows (or one row per sample), before epoch shuffling
  LoaderPosition pos_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<PackedRow> cached_rows_;
};

// ---- ordering primitives (exposed for tests) ----------------------------------------------------------------------
// splitmix64-seeded xoshiro256** generator: explicit so that orders are identical on every platform and library.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased (Lemire's multiply-and-reject)
 private:
  uint64_t s_[4];
};
uint64_t splitmix64(uint64_t& state);
std::vector<int32_t> random_permutation(int64_t n, uint64_t seed);  // Fisher-Yates with Rng
// HF get_length_grouped_indices: random permutation, megabatches of mult*batch_size (mult = min(n/(4*batch), 50),
// at least 1) each sorted by length descending, then the longest sample overall swapped to position 0.
std::vector<int32_t> length_grouped_order(const std::vector<int64_t>& lengths, int64_t batch_size, uint64_t seed);

// ---- validation split -------------------------------------------------------------------------------------------
// "0.1" -> fraction of the rows (rounded, at least 1), "500" -> that many rows; parsed by parse_validation_split.
struct ValidationSplit {
  double fraction = 0.0;
  int64_t count = 0;
  bool enabled() const { return fraction > 0.0 || count > 0; }
};
ValidationSplit parse_validation_split(std::string_view text);
// Moves a seeded random subset of `train` into the returned vector (both keep their original relative order).
// Throws when the split would leave no training rows.
std::vector<Example> split_validation(std::vector<Example>& train, const ValidationSplit& split, uint64_t seed);

}  // namespace sft::data
