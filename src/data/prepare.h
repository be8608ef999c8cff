// One call for `sft train`: read the dataset(s), split off validation rows, template + tokenize, truncate, report.
// The trainer then builds a DataLoader over `train` (and one with shuffle=false over `eval`).
//
// Typical use (cmd_train / train):
//   sft::data::PrepareOptions po; po.dataset_path = ...; po.templ.tmpl = sft::data::parse_template("alpaca");
//   po.max_seq_length = 1024; ...
//   sft::data::TokenizerEncoder enc(tokenizer);
//   sft::data::PreparedData d = sft::data::prepare_dataset(po, enc);   // the CLI prints d.train_report etc.
//   sft::data::LoaderOptions lo; lo.batch_size = 4; lo.max_seq_length = 1024; lo.pad_id = pad; lo.seed = seed;
//   sft::data::DataLoader loader(d.train, lo);
//   auto targets = loader.targets_ahead(grad_accum);   // loss scale = 1 / sum(targets)
//   sft::data::Batch b = loader.next();                  // copy fields into sft::model::Batch
//   checkpoint: save loader.position().epoch/.index; on resume: loader.seek({epoch, index}).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/batching.h"
#include "data/dataset.h"
#include "data/template.h"

namespace sft::data {

struct PrepareOptions {
  std::filesystem::path dataset_path;
  std::filesystem::path eval_dataset_path;  // optional; exclusive with validation_split
  ValidationSplit validation_split;          // optional: split off the training file
  ReadOptions read;                          // format, skip_bad_rows
  TemplateOptions templ;
  int64_t max_seq_length = 1024;
  Truncation truncation = Truncation::Right;
  uint64_t seed = 42;                        // for the validation split
  // Tokenization threads; 0 = all hardware threads. The encoder must be thread-safe when > 1 (sft::tok::Tokenizer
  // is; results are identical for any thread count, see alignment_test).
  int num_threads = 0;
};

struct PreparedData {
  std::shared_ptr<const std::vector<Sample>> train, eval;  // eval is empty (not null) without an eval set
  std::vector<Example> train_examples, eval_examples;      // source rows, indexed by Sample::source_index
  ReadResult train_read, eval_read;                        // examples moved out; counts and skip messages kept
  TruncationReport train_report, eval_report;
};

PreparedData prepare_dataset(const PrepareOptions& opts, const TextEncoder& enc);

// Multi-line human-readable summary of a report (the CLI prints it before training), e.g.
//   "token lengths: p50 212  p90 468  p95 590  p99 880  max 1730 (51760 samples, max_seq_length 512)\n"
//   "over max_seq_length: 3107 samples (6.0%); truncation right drops 412345 of 9876543 target tokens (4.2%),
//    12 samples lose all their targets (removed)"
std::string format_report(const TruncationReport& r, Truncation mode);

// Lines about rows that were read but not used (bad rows skipped, empty responses excluded); "" when none.
// `what` names the file in the text.
std::string format_read_report(const ReadResult& r, const std::string& what);

}  // namespace sft::data
