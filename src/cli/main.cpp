// sft: supervised instruction fine-tuning of LLM base models, end to end.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sft::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
