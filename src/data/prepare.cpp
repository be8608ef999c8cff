// prepare_dataset: read -> split -> tokenize (optionally on several threads, results in row order) -> truncate.
#include "data/prepare.h"

#include <cstdio>
#include <exception>
#include <thread>

#include "util/error.h"

namespace sft::data {
namespace {

// Tokenizes every example; a template error on a row is fatal, or skipped and counted under skip_bad_rows.
std::vector<Sample> tokenize_all(const std::vector<Example>& examples, const PrepareOptions& opts,
                                 const TextEncoder& enc, ReadResult& read) {
  const size_t n = examples.size();
  std::vector<Sample> samples(n);
  std::vector<std::string> errors(n);
  auto work = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      try {
        samples[i] = tokenize_example(examples[i], opts.templ, enc);
        samples[i].source_index = static_cast<int32_t>(i);
      } catch (const Error& e) {
        errors[i] = e.what();
      }
    }
  };
  const size_t want = opts.num_threads > 0 ? static_cast<size_t>(opts.num_threads)
                                           : std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = std::max<size_t>(1, std::min<size_t>(want, n / 64 + 1));  // >= 64 rows per thread
  if (threads == 1) {
    work(0, n);
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(work, n * t / threads, n * (t + 1) / threads);
    for (auto& th : pool) th.join();
  }
  std::vector<Sample> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (errors[i].empty()) {
      out.push_back(std::move(samples[i]));
      continue;
    }
    if (!opts.read.skip_bad_rows) throw Error(errors[i]);
    ++read.rows_skipped;
    if (read.skip_messages.size() < 10) read.skip_messages.push_back(errors[i]);
  }
  return out;
}

}  // namespace

PreparedData prepare_dataset(const PrepareOptions& opts, const TextEncoder& enc) {
  SFT_CHECK(!opts.dataset_path.empty(), "no dataset path given");
  SFT_CHECK(opts.eval_dataset_path.empty() || !opts.validation_split.enabled(),
            "give either an eval dataset or a validation split, not both");
  PreparedData d;
  d.train_read = read_dataset(opts.dataset_path, opts.read);
  d.train_examples = std::move(d.train_read.examples);
  d.train_read.examples.clear();
  SFT_CHECK(!d.train_examples.empty(), opts.dataset_path.string(), ": no usable rows (", d.train_read.rows_seen,
            " read, ", d.train_read.rows_skipped, " skipped as bad, ", d.train_read.rows_empty_response,
            " with an empty response excluded", d.train_read.rows_empty_response > 0 ? "; --keep_empty_responses True keeps them" : "",
            ")");
  if (!opts.eval_dataset_path.empty()) {
    d.eval_read = read_dataset(opts.eval_dataset_path, opts.read);
    d.eval_examples = std::move(d.eval_read.examples);
    d.eval_read.examples.clear();
  } else {
    d.eval_examples = split_validation(d.train_examples, opts.validation_split, opts.seed);
  }
  auto train = std::make_shared<std::vector<Sample>>(tokenize_all(d.train_examples, opts, enc, d.train_read));
  auto eval = std::make_shared<std::vector<Sample>>(tokenize_all(d.eval_examples, opts, enc, d.eval_read));
  d.train_report = apply_truncation(*train, opts.max_seq_length, opts.truncation);
  d.eval_report = apply_truncation(*eval, opts.max_seq_length, opts.truncation);
  SFT_CHECK(!train->empty(), opts.dataset_path.string(), ": no training samples left after truncation to ",
            opts.max_seq_length, " tokens");
  d.train = std::move(train);
  d.eval = std::move(eval);
  return d;
}

std::string format_read_report(const ReadResult& r, const std::string& what) {
  std::string s;
  if (r.rows_skipped > 0) {
    s += "skipped " + std::to_string(r.rows_skipped) + " bad rows of " + std::to_string(r.rows_seen) + " in " + what +
         " (--skip_bad_rows):\n";
    for (const auto& m : r.skip_messages) s += "  " + m + "\n";
  }
  if (r.rows_empty_response > 0) {
    s += "empty responses: " + std::to_string(r.rows_empty_response) + " of " + std::to_string(r.rows_seen) +
         " rows in " + what + " have an empty output and are excluded (--keep_empty_responses True keeps them), e.g. ";
    for (size_t i = 0; i < r.empty_response_rows.size(); ++i) s += (i ? "; " : "") + r.empty_response_rows[i];
    s += "\n";
  }
  return s;
}

std::string format_report(const TruncationReport& r, Truncation mode) {
  auto pct = [](int64_t a, int64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", b > 0 ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0);
    return std::string(buf);
  };
  char mean[32];
  std::snprintf(mean, sizeof mean, "%.1f", r.mean);
  std::string s = "token lengths: p50 " + std::to_string(r.p50) + "  p90 " + std::to_string(r.p90) + "  p95 " +
                  std::to_string(r.p95) + "  p99 " + std::to_string(r.p99) + "  max " + std::to_string(r.max) +
                  "  mean " + mean + " (" + std::to_string(r.samples) + " samples, max_seq_length " +
                  std::to_string(r.max_seq_length) + ")\n";
  s += "over max_seq_length: " + std::to_string(r.over_length) + " samples (" + pct(r.over_length, r.samples) + "); ";
  if (mode == Truncation::Split) {
    s += "kept whole: --packing_strategy wrapped continues them in the next row\n";
  } else if (mode == Truncation::Drop) {
    s += "truncation drop removes them with " + std::to_string(r.target_tokens_dropped) + " of " +
         std::to_string(r.target_tokens) + " target tokens (" + pct(r.target_tokens_dropped, r.target_tokens) + ")\n";
  } else {
    s += "truncation right cuts " + std::to_string(r.target_tokens_dropped) + " of " + std::to_string(r.target_tokens) +
         " target tokens (" + pct(r.target_tokens_dropped, r.target_tokens) + "); " +
         std::to_string(r.samples_without_targets) + " samples lose all their targets (removed)\n";
  }
  s += "samples kept: " + std::to_string(r.samples_kept) + " of " + std::to_string(r.samples) + "\n";
  return s;
}

}  // namespace sft::data
