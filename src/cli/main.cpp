// sft: supervised instruction fine-tuning of LLM base models, end to end.
#include <cstdio>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"sft: supervised fine-tuning of LLM base models (HF folder in, HF folder out)", "sft"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sft 0.1.0");
  sft::cli::register_info(app);
  sft::cli::register_tokenize(app);
  sft::cli::register_train(app);
  sft::cli::register_eval(app);
  sft::cli::register_generate(app);
  sft::cli::register_merge(app);
  sft::cli::register_export(app);
  // A mistyped subcommand gets a did-you-mean instead of CLI11's "A subcommand is required".
  if (argc >= 2 && argv[1][0] != '-') {
    const std::string given = argv[1];
    std::string best;
    size_t best_d = SIZE_MAX;
    bool known = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known |= sub->get_name() == given;
      const size_t d = sft::cli::edit_distance(given, sub->get_name());
      if (d < best_d) best_d = d, best = sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "sft: error: unknown command '%s'%s (commands: info, tokenize, train, eval, generate, chat, merge, export; "
                   "sft --help)\n", given.c_str(), best_d <= 2 ? (" (did you mean '" + best + "'?)").c_str() : "");
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sft::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: error: out of memory (reduce --per_device_train_batch_size / --max_seq_length, or use a "
                         "smaller model; `sft info --model M` estimates the memory a run needs)\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // A folder that cannot be created or read (permissions, a file in the way, a full disk): name the path.
    std::fflush(stdout);
    std::fprintf(stderr, "sft: error: %s: %s\n", e.path1().string().c_str(), e.code().message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
