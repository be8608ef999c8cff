// Placeholder until the owning issue lands its command (replaced, never shipped as is).
#include "cli/commands.h"
#include "util/error.h"
namespace sft::cli {
void register_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw Error("sft info: not implemented yet"); });
}
}  // namespace sft::cli
