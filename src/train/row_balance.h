// Which rank trains which rows of an optimizer step (data parallel, train -> data).
//
// The gradient of a step is the token-normalised sum over every row of its global batch (HF semantics: per-device
// batch x world x accumulation rows, in an order that depends on --seed only). Which rank computes which row changes
// only the floating-point order of that sum, so the rows can be dealt out for speed: ranks meet at the gradient
// all-reduce after the step's last backward, and one rank holding longer rows (or more target tokens) makes the
// others wait. `balance_step_rows` builds micro-batches of at most per_device rows of similar length (little padding)
// and deals them out so that the slowest rank's estimated compute is least: it keeps the better of (a) the step's
// rows sorted by length, cut into micro-batches, dealt largest first to the least loaded rank, then swapped between
// ranks, (b) rows dealt first (largest first, even row counts), then sorted into micro-batches per rank and swapped,
// (c) the loader's own split (rank r: rows [r*b, (r+1)*b) of every global micro-batch), so it is never worse than (c).
// Every rank runs it on the same global batches and gets the same plan (integer costs: no floating-point result that
// could differ between machines). One process with gradient accumulation uses it too (world 1: its micro-batches
// regrouped by length); without accumulation it trains on the loader's micro-batches as they are.
#pragma once
#include <cstdint>
#include <vector>

#include "data/batching.h"
#include "io/hf_config.h"

namespace sft::train {

// One row of a step's global batch: global micro-batch `micro`, row `row` of it; `length` is one past its last real
// token (rows are right-padded), `targets` its target tokens.
struct StepRow {
  int32_t micro = 0, row = 0;
  int64_t length = 0, targets = 0;
};

// Estimated compute of a micro-batch of B rows padded to T holding N targets: B*T*per_token + B*T*T*per_token_sq +
// N*per_target; padding-free (the rows laid end to end in one row, attention within each sample): the sum over its
// rows of len*per_token + len*len*per_token_sq, + N*per_target. Integer weights (relative FLOPs), so every rank
// computes exactly the same plan.
struct RowCost {
  int64_t per_token = 1;     // layers' linear maps on every computed position
  int64_t per_token_sq = 0;  // causal attention: grows with the square of each sample's (padded: the row's) length
  int64_t per_target = 0;    // LM head and cross-entropy: on target positions only (decoder.h gathers them)
  bool padding_free = false; // micro-batches are computed without padding (train/trainer.cpp, --padding_free)
};

// Forward + backward FLOPs of the decoder (model/decoder.h): 6 x the layers' weights per position, 12 x heads x
// head_dim x layers per causal (query, key) pair (T^2 / 2 pairs a row), 6 x hidden x vocab per target.
RowCost row_cost_from_config(const io::ModelConfig& c);

int64_t micro_batch_cost(const std::vector<StepRow>& rows, const RowCost& cost);

// The rows of a step's global micro-batches (every row, including those of a short last global batch).
std::vector<StepRow> step_rows(const std::vector<data::Batch>& globals);

// plan[rank] = that rank's micro-batches, each a list of at most per_device rows. Every row appears in exactly one
// micro-batch; a rank gets at most as many micro-batches as there are global ones (the loader's split). A pure function
// of its inputs. Ranks may get no micro-batch at all (a step with fewer rows than ranks).
using RankPlan = std::vector<std::vector<StepRow>>;
std::vector<RankPlan> balance_step_rows(std::vector<StepRow> rows, int world, int64_t per_device, const RowCost& cost);

// The most positions a micro-batch computes in a step whose global rows have these token counts: a micro-batch holds
// at most per_device of the step's rows, so at most the per_device longest (padding-free: their tokens; padded:
// per_device x the longest). Exact for one process (its regrouped step starts with the longest rows); an upper bound
// for a rank of several. The trainer sizes the model's workspace with it before the first step.
int64_t max_micro_batch_positions(std::vector<int64_t> row_lengths, int64_t per_device, bool padding_free);

// The rows of `rows` (in that order) copied out of `globals` into one right-padded batch (input id pad_id), T the
// longest of them (a row may come from a global micro-batch padded to less); origins and sample indices come along.
data::Batch gather_rows(const std::vector<data::Batch>& globals, const std::vector<StepRow>& rows, int32_t pad_id);

}  // namespace sft::train
