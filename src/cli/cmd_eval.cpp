// Placeholder until the owning issue lands its command (replaced, never shipped as is).
#include "cli/commands.h"
#include "util/error.h"
namespace sft::cli {
void register_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw Error("sft eval: not implemented yet"); });
}
}  // namespace sft::cli
