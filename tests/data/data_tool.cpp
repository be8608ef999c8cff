// Driver for tests/data/test_alignment.py: reads a dataset, applies a template with the real tokenizer and prints
// one JSON line per sample: {"origin", "ids", "labels"}; with --loader it instead prints the batches of one epoch.
//   data_tool <tokenizer_dir> <dataset> <alpaca|chatml|plain|model> [--train_on_inputs] [--system S]
//             (model: the folder's own chat template, template/chat_template.h)
//             [--loader batch_size max_seq_length packing(0|1) seed]
//             TRL's options: [--dataset_format F] [--dataset_text_field F] [--completion_only_loss 0|1]
//             [--assistant_only_loss 0|1]; each JSON line then also has "format" (the row's format name)
//   data_tool --csv-records <file>   prints parse_csv_records as one JSON array of {"fields", "line", "error"}
//   data_tool --length-grouped <batch_size> <seed> <len,len,...>
//             prints {"perm": random_permutation(n, seed), "order": length_grouped_order(lengths, batch, seed)}
//   data_tool --pack <bfd|wrapped> <capacity> <len,len,...>
//             prints the packed rows as [[[sample, begin, end], ...], ...] (data/packing.h, TRL's 1000-sample chunks)
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "data/batching.h"
#include "data/prepare.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file_util.h"

int main(int argc, char** argv) {
  using namespace sft::data;
  try {
    if (argc == 3 && std::string(argv[1]) == "--csv-records") {
      nlohmann::json out = nlohmann::json::array();
      for (const CsvRecord& r : parse_csv_records(sft::read_file(argv[2]), argv[2]))
        out.push_back({{"fields", r.fields}, {"line", r.line}, {"error", r.error}});
      std::cout << out.dump() << '\n';
      return 0;
    }
    auto parse_lengths = [](std::string list) {
      std::vector<int64_t> lengths;
      for (std::string item; !list.empty();) {
        const size_t comma = list.find(',');
        item = list.substr(0, comma);
        list = comma == std::string::npos ? "" : list.substr(comma + 1);
        lengths.push_back(std::stoll(item));
      }
      return lengths;
    };
    if (argc == 5 && std::string(argv[1]) == "--pack") {
      const std::vector<int64_t> lengths = parse_lengths(argv[4]);
      const int64_t capacity = std::stoll(argv[3]);
      std::vector<PackedRow> rows;
      if (parse_packing_strategy(argv[2]) == PackingStrategy::Wrapped) {
        rows = pack_wrapped(lengths, capacity);
      } else {
        for (const auto& bin : pack_best_fit_decreasing(lengths, capacity)) {
          rows.emplace_back();
          for (int32_t s : bin) rows.back().push_back({s, 0, lengths[static_cast<size_t>(s)]});
        }
      }
      nlohmann::json out = nlohmann::json::array();
      for (const PackedRow& row : rows) {
        nlohmann::json r = nlohmann::json::array();
        for (const Piece& p : row) r.push_back({p.sample, p.begin, p.end});
        out.push_back(r);
      }
      std::cout << out.dump() << '\n';
      return 0;
    }
    if (argc == 5 && std::string(argv[1]) == "--length-grouped") {
      const std::vector<int64_t> lengths = parse_lengths(argv[4]);
      const int64_t batch = std::stoll(argv[2]);
      const uint64_t seed = std::stoull(argv[3]);
      nlohmann::json j;
      j["perm"] = random_permutation(static_cast<int64_t>(lengths.size()), seed);
      j["order"] = length_grouped_order(lengths, batch, seed);
      std::cout << j.dump() << '\n';
      return 0;
    }
    if (argc < 4) {
      std::fprintf(stderr, "usage: data_tool <tokenizer_dir> <dataset> <template> [options]\n");
      return 2;
    }
    sft::tok::Tokenizer tok = sft::tok::Tokenizer::load(argv[1]);
    TokenizerEncoder enc(tok);
    TemplateOptions opts;
    opts.tmpl = parse_template(argv[3]);
    if (opts.tmpl == Template::Model)
      opts.chat_template = std::make_shared<sft::jinja::ChatTemplate>(sft::jinja::ChatTemplate::load_required(argv[1]));
    bool loader = false;
    LoaderOptions lo;
    ReadOptions ro;
    for (int i = 4; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--train_on_inputs") opts.train_on_inputs = true;
      else if (a == "--dataset_format" && i + 1 < argc) ro.dataset_format = parse_dataset_format(argv[++i]);
      else if (a == "--dataset_text_field" && i + 1 < argc) ro.dataset_text_field = argv[++i];
      else if (a == "--completion_only_loss" && i + 1 < argc) opts.completion_only_loss = std::string(argv[++i]) == "1";
      else if (a == "--assistant_only_loss" && i + 1 < argc) opts.assistant_only_loss = std::string(argv[++i]) == "1";
      else if (a == "--system" && i + 1 < argc) opts.system_prompt = argv[++i];
      else if (a == "--loader" && i + 4 < argc) {
        loader = true;
        lo.batch_size = std::stoll(argv[++i]);
        lo.max_seq_length = std::stoll(argv[++i]);
        lo.packing = std::string(argv[++i]) == "1";
        lo.seed = std::stoull(argv[++i]);
      } else {
        std::fprintf(stderr, "data_tool: unknown argument %s\n", a.c_str());
        return 2;
      }
    }
    // Every row is printed, empty responses included: the parity tests compare each row's tokens with HF (sft train
    // excludes such rows by default; that policy is tested in readers_test.cpp).
    ro.keep_empty_responses = true;
    ReadResult r = read_dataset(argv[2], ro);
    if (!loader) {
      for (const Example& ex : r.examples) {
        Sample s = tokenize_example(ex, opts, enc);
        nlohmann::json j;
        j["origin"] = ex.origin;
        j["format"] = row_format_name(ex.format);
        j["ids"] = s.ids;
        j["labels"] = s.labels;
        std::cout << j.dump() << '\n';
      }
      return 0;
    }
    auto samples = std::make_shared<std::vector<Sample>>();
    for (const Example& ex : r.examples) samples->push_back(tokenize_example(ex, opts, enc));
    apply_truncation(*samples, lo.max_seq_length, Truncation::Right);
    lo.pad_id = tok.pad_id().value_or(0);
    DataLoader dl(samples, lo);
    for (int64_t b = 0; b < dl.batches_per_epoch(); ++b) {
      Batch batch = dl.next();
      nlohmann::json j;
      j["B"] = batch.B;
      j["T"] = batch.T;
      j["input_ids"] = batch.input_ids;
      j["labels"] = batch.labels;
      j["position_ids"] = batch.position_ids;
      j["doc_ids"] = batch.doc_ids;
      std::cout << j.dump() << '\n';
    }
    return 0;
  } catch (const sft::Error& e) {
    std::fprintf(stderr, "data_tool: error: %s\n", e.what());
    return 1;
  }
}
