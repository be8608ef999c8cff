// Placeholder until the owning issue lands its command (replaced, never shipped as is).
#include "cli/commands.h"
#include "util/error.h"
namespace sft::cli {
void register_generate(CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw Error("sft generate: not implemented yet"); });
}
}  // namespace sft::cli
