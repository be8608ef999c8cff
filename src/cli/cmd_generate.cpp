// `sft generate` (one prompt) and `sft chat` (interactive, with history): KV-cached decoding with HF sampling
// semantics; defaults come from the model folder's generation_config.json, flags override them.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/device.h"
#include "cli/commands.h"
#include "cli/numeric_flags.h"
#include "cli/quant_flags.h"
#include "io/gguf.h"
#include "data/template.h"
#include "data/template_choice.h"
#include "generate/chat_session.h"
#include "generate/generator.h"
#include "model/lora.h"
#include "model/weight_check.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace sft::cli {
namespace {

struct GenArgs {
  std::string adapter;  // peft adapter folder applied to --model
  std::string model, prompt, input, tmpl, system, dtype = "float32", device = "cpu";
  std::vector<std::string> stop;
  // Numeric flags as given (parsed by parse_numeric_flags into the values below: numeric_flags.h).
  std::string max_new_tokens_flag, temperature_flag, top_p_flag, top_k_flag, repetition_penalty_flag, seed_flag = "0";
  int64_t max_new_tokens = 0;
  float temperature = 1.0f, top_p = 1.0f, repetition_penalty = 1.0f;
  int64_t top_k = 50;
  uint64_t seed = 0;
  bool do_sample = false, greedy = false, stats = false, json = false, allow_nonfinite_weights = false;
  QuantFlags quant;  // --load_in_4bit ... (QLoRA adapters)
  CLI::Option *o_max_new = nullptr, *o_temp = nullptr, *o_top_p = nullptr, *o_top_k = nullptr, *o_rep = nullptr;
};

// Every numeric flag, parsed and range-checked before the model is loaded: one-line errors naming the flag (exit 1).
// The ranges are transformers' (GenerationConfig.validate and the logits processors): max_new_tokens > 0,
// temperature >= 0 (0 = greedy here), top_k >= 0 (0 disables), top_p in [0, 1], repetition_penalty > 0.
void parse_numeric_flags(GenArgs& a) {
  constexpr double kFloatMax = std::numeric_limits<float>::max();  // the values are kept as float
  if (a.o_max_new->count())
    a.max_new_tokens = parse_int_flag("--max_new_tokens", a.max_new_tokens_flag, 1, int64_t{1} << 30,
                                      "a number of new tokens from 1 to 1073741824");
  if (a.o_temp->count())
    a.temperature = static_cast<float>(parse_real_flag("--temperature", a.temperature_flag, 0, false, kFloatMax, false,
                                                       "a finite number >= 0 (0 = greedy)"));
  if (a.o_top_p->count())
    a.top_p = static_cast<float>(parse_real_flag("--top_p", a.top_p_flag, 0, false, 1, false,
                                                 "a number in [0, 1] (1 disables)"));
  if (a.o_top_k->count())
    a.top_k = parse_int_flag("--top_k", a.top_k_flag, 0, std::numeric_limits<int32_t>::max(),
                             "an integer from 0 to 2147483647 (0 disables)");
  if (a.o_rep->count())
    a.repetition_penalty = static_cast<float>(parse_real_flag("--repetition_penalty", a.repetition_penalty_flag, 0,
                                                              true, kFloatMax, false, "a finite number > 0 (1 disables)"));
  a.seed = parse_uint64_flag("--seed", a.seed_flag, "an integer from 0 to 18446744073709551615");
}

// Everything a session needs: model, tokenizer, generator and resolved options.
struct Session {
  std::unique_ptr<backend::Backend> be;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tok::Tokenizer> tok;
  std::unique_ptr<gen::Generator> gen;
  gen::GenerationConfig gc;
  gen::GenerateOptions opts;
};

Session open_session(const GenArgs& a) {
  SFT_CHECK(std::filesystem::is_directory(a.model) || io::is_gguf_file(a.model), "--model: ", a.model,
            " is not a model folder or .gguf file");
  Session s;
  s.be = backend::make_backend(a.device);
  s.tok = std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(a.model));
  const model::Precision p = model::parse_precision(a.dtype);
  model::LoraOptions storage;
  s.model = model::load_model(a.model, a.adapter, *s.be, quant_precision(a.quant, p), a.allow_nonfinite_weights,
                              base_storage(a.quant, !a.adapter.empty(), p == model::Precision::BF16, storage));
  s.gen = std::make_unique<gen::Generator>(*s.model, *s.tok);
  s.gc = gen::load_generation_config(a.model);
  const gen::GenerationConfig& gc = s.gc;
  s.opts.sampling = gc.sampling;
  s.opts.max_new_tokens = gc.max_new_tokens.value_or(256);  // HF's max_length=20 default is too short for a CLI
  if (a.o_max_new->count()) s.opts.max_new_tokens = a.max_new_tokens;
  if (a.o_temp->count()) {
    s.opts.sampling.temperature = a.temperature;
    if (a.temperature > 0 && !a.greedy) s.opts.sampling.do_sample = true;  // asking for a temperature means sampling
  }
  if (a.o_top_p->count()) s.opts.sampling.top_p = a.top_p;
  if (a.o_top_k->count()) s.opts.sampling.top_k = a.top_k;
  if (a.o_rep->count()) s.opts.sampling.repetition_penalty = a.repetition_penalty;
  {  // flags are checked with the flag's name (generation_config.json values were checked on load)
    gen::SamplingParams given;
    if (a.o_temp->count()) given.temperature = a.temperature;
    if (a.o_top_p->count()) given.top_p = a.top_p;
    if (a.o_top_k->count()) given.top_k = a.top_k;
    if (a.o_rep->count()) given.repetition_penalty = a.repetition_penalty;
    gen::validate_sampling(given, "--");  // parse_numeric_flags checked the ranges already; this is the same rule
  }
  if (a.do_sample) s.opts.sampling.do_sample = true;
  if (a.greedy || (a.o_temp->count() && a.temperature == 0)) s.opts.sampling.do_sample = false;
  s.opts.seed = a.seed;
  s.opts.stop_strings = a.stop;
  return s;
}

void print_stats(const gen::GenerateResult& r) {
  double tps = r.decode_seconds > 0 ? static_cast<double>(r.tokens.size()) / r.decode_seconds : 0;
  std::fprintf(stderr, "[%lld prompt tokens (%lld computed) in %.2f s; %zu new tokens in %.2f s = %.1f tok/s; stop: %s]\n",
               static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.prefill_tokens), r.prefill_seconds,
               r.tokens.size(), r.decode_seconds, tps, r.stop_reason.c_str());
}

auto stream_to_stdout() {
  return [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
}

using Stream = std::function<void(const std::string&)>;

// One turn of output: the reply streamed to stdout, a newline, the statistics when asked.
void print_reply(const GenArgs& a, const std::function<gen::GenerateResult(Stream)>& generate) {
  auto r = generate(stream_to_stdout());
  std::fputs("\n", stdout);
  if (a.stats) print_stats(r);
}

void run_generate(GenArgs& a) {
  parse_numeric_flags(a);
  // --template auto without a chat template in the folder: none, the prompt as is.
  const data::ResolvedTemplate chosen = data::resolve_template(a.tmpl.empty() ? "none" : a.tmpl, a.model, "none");
  const std::string& tmpl = chosen.name;
  SFT_CHECK(tmpl == "none" || tmpl == "alpaca" || tmpl == "chatml" || tmpl == "plain" || tmpl == "model",
            "--template must be alpaca, chatml, plain, model, auto or none, got '", tmpl, "'");
  std::string prompt = a.prompt;
  if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  Session s = open_session(a);
  s.opts.eos_ids =
      gen::stop_token_ids(s.gc, *s.tok, tmpl == "chatml" ? data::Template::ChatML : data::Template::Alpaca);
  std::string text = prompt;
  if (tmpl != "none") {
    data::TemplateOptions to;
    to.tmpl = data::parse_template(tmpl);
    to.chat_template = chosen.chat_template;
    to.system_prompt = a.system;
    text = data::inference_prompt(prompt, a.input, to);
    gen::add_end_of_turn(s.opts.eos_ids, *s.tok, to);
  }
  // As HF tokenizer(prompt): BOS where the post-processor adds one; a chat template writes its own BOS
  // (apply_chat_template encodes with add_special_tokens=False).
  auto ids = s.tok->encode(text, tmpl != "model");
  if (a.json) {  // machine-readable: one JSON object, no streaming (scripts, benchmarks, parity tests)
    auto r = s.gen->generate(ids, s.opts);
    nlohmann::json j = {{"prompt_ids", ids},          {"tokens", r.tokens},
                        {"text", r.text},             {"stop_reason", r.stop_reason},
                        {"prefill_seconds", r.prefill_seconds}, {"decode_seconds", r.decode_seconds}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  print_reply(a, [&](Stream on_text) { return s.gen->generate(ids, s.opts, on_text); });
}

// sft chat: the transcript, its template (chatml / alpaca / the folder's own) and the stop rules are the ChatSession's
// (generate/chat_session.h); this loop reads lines and prints replies.
void run_chat(GenArgs& a) {
  parse_numeric_flags(a);
  // --template auto without a chat template in the folder: "" = the default for the vocabulary.
  const data::ResolvedTemplate chosen = data::resolve_template(a.tmpl, a.model, "");
  SFT_CHECK(chosen.name.empty() || chosen.name == "chatml" || chosen.name == "alpaca" || chosen.name == "model",
            "sft chat supports --template model, auto, chatml or alpaca, got '", a.tmpl, "'");
  Session s = open_session(a);
  data::TemplateOptions to;
  to.tmpl = chosen.name.empty() ? gen::default_chat_template(*s.tok) : data::parse_template(chosen.name);
  to.chat_template = chosen.chat_template;
  to.system_prompt = a.system;
  gen::ChatSession chat(*s.gen, *s.tok, s.gc, s.opts, to);
  std::fprintf(stderr, "sft chat (%s template) — /reset clears the history, /exit quits\n", data::template_name(to.tmpl));
  std::string line;
  while (true) {
    std::fputs("\n>>> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      chat.reset();
      std::fputs("(history cleared)\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    print_reply(a, [&](Stream on_text) { return chat.send(line, on_text); });
  }
}

void add_common(CLI::App* sub, const std::shared_ptr<GenArgs>& a) {
  sub->add_option("--model,--model_name_or_path", a->model, "HF model folder")->required();
  sub->add_option("--adapter", a->adapter, "peft LoRA adapter folder applied to --model (no merge needed)");
  sub->add_option("--system", a->system, "System prompt (chatml)");
  a->o_max_new = sub->add_option("--max_new_tokens", a->max_new_tokens_flag,
                                 "Tokens to generate at most, >= 1 (default: generation_config.json, else 256)");
  a->o_temp = sub->add_option("--temperature", a->temperature_flag, "Sampling temperature, >= 0 (0 = greedy)");
  a->o_top_k = sub->add_option("--top_k", a->top_k_flag, "Top-k filter, >= 0 (0 disables)");
  a->o_top_p = sub->add_option("--top_p", a->top_p_flag, "Nucleus (top-p) filter in [0, 1] (1 disables)");
  a->o_rep = sub->add_option("--repetition_penalty", a->repetition_penalty_flag, "HF repetition penalty, > 0 (1 disables)");
  sub->add_flag("--do_sample", a->do_sample, "Sample instead of greedy decoding");
  sub->add_flag("--greedy", a->greedy, "Greedy decoding (overrides generation_config.json's do_sample)");
  sub->add_option("--seed", a->seed_flag, "Sampling seed")->capture_default_str();
  sub->add_option("--stop", a->stop, "Stop string (repeatable); the output is cut before it");
  sub->add_option("--dtype", a->dtype, "float32 or bfloat16")->capture_default_str();
  sub->add_option("--device", a->device, "cpu or cuda[:N]")->capture_default_str();
  sub->add_flag("--stats", a->stats, "Print token counts and speed to stderr");
  add_quant_flags(sub, a->quant);
  sub->add_flag(model::kAllowNonfiniteFlag, a->allow_nonfinite_weights, "Load weights holding NaN/inf anyway (for debugging; by default such a model, adapter or merge is refused, naming the tensor)");
}

}  // namespace

void register_generate(CLI::App& app) {
  auto g = std::make_shared<GenArgs>();
  auto* gen_cmd = app.add_subcommand("generate", "Generate text from a prompt (streamed)");
  add_common(gen_cmd, g);
  gen_cmd->add_option("--prompt", g->prompt, "Prompt text ('-' reads stdin); with a template: the instruction")
      ->required();
  gen_cmd->add_option("--input", g->input, "Alpaca/plain input field");
  gen_cmd->add_flag("--json", g->json, "Print one JSON object (prompt_ids, tokens, text, stop_reason, timings)");
  gen_cmd->add_option("--template", g->tmpl, "model | auto | alpaca | chatml | plain | none (default none: the prompt as is; model = the folder's own "
                  "chat template as apply_chat_template renders it; auto = model when the folder has one, else none)");
  gen_cmd->callback([g] { run_generate(*g); });

  auto c = std::make_shared<GenArgs>();
  auto* chat_cmd = app.add_subcommand("chat", "Interactive chat with history (/reset, /exit)");
  add_common(chat_cmd, c);
  chat_cmd->add_option("--template", c->tmpl, "model | auto | chatml | alpaca (default: chatml when the vocab has <|im_start|>, else alpaca; "
                  "auto = the folder's chat template when it has one)");
  chat_cmd->callback([c] { run_chat(*c); });
}

}  // namespace sft::cli
