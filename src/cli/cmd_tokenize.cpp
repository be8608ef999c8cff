// `sft tokenize`: inspect how a model's tokenizer splits text, dump ids, or time encoding of a file.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"
#include "util/json_text.h"

namespace sft::cli {

namespace {

// Shows bytes safely on a terminal: complete printable UTF-8 characters as they are, controls and partial/invalid
// bytes as escapes (\n, \t, \r, \xNN).
std::string show_bytes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') { out += "\\n"; ++i; continue; }
    if (c == '\t') { out += "\\t"; ++i; continue; }
    if (c == '\r') { out += "\\r"; ++i; continue; }
    if (c == '\\') { out += "\\\\"; ++i; continue; }
    const size_t len = tok::utf8::valid_sequence_length(s, i);
    size_t cl = 0;
    const uint32_t cp = len ? tok::utf8::decode_at(s, i, cl) : 0;
    if (len == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
      char buf[8];
      for (size_t k = 0; k < (len ? len : 1); ++k) {
        std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[i + k]));
        out += buf;
      }
      i += len ? len : 1;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  return out;
}

struct Options {
  std::string model, text, file, chat;
  bool add_special = false, json = false, lines = false, bench = false, ids_only = false, add_generation_prompt = false;
  int repeat = 3;
  CLI::Option *o_text = nullptr, *o_file = nullptr;
};

// --chat FILE.jsonl: one conversation per line ({"messages": [...]} or a bare message list), rendered with the
// model's own chat template as transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=..)
// does, and encoded like apply_chat_template(tokenize=True) (add_special_tokens=False: the template writes BOS).
void run_chat(const Options& o) {
  const auto tok = tok::Tokenizer::load(o.model);
  const auto tmpl = jinja::ChatTemplate::load_required(o.model);
  const std::string input = read_input_file(o.chat, input::dataset);
  std::printf("[");
  size_t line_no = 0, n = 0;
  for (size_t pos = 0; pos < input.size();) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string::npos) nl = input.size();
    std::string line = input.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.chat + " line " + std::to_string(line_no);
    jinja::Value row = jinja::value_from_json_text(line, where);
    jinja::List messages;
    if (row.is_list()) {
      messages = row.as_list();
    } else {
      const jinja::Value* m = row.is_dict() ? row.as_dict().find("messages") : nullptr;
      SFT_CHECK(m && m->is_list(), where, ": expected {\"messages\": [...]} or a list of messages");
      messages = m->as_list();
    }
    SFT_CHECK(!messages.empty(), where, ": empty conversation");
    std::string text;
    try {
      text = tmpl.render(messages, o.add_generation_prompt).text;
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    const auto ids = tok.encode(text, false);
    std::printf("%s{\"text\":%s,\"ids\":[", n++ ? ",\n" : "", json_text::quoted(text).c_str());
    for (size_t k = 0; k < ids.size(); ++k) std::printf("%s%d", k ? "," : "", ids[k]);
    std::printf("]}");
  }
  std::printf("]\n");
}

void run(const Options& o) {
  // An empty --text "" is a valid input with zero tokens (as --file /dev/null is).
  const bool has_text = o.o_text->count() > 0, has_file = o.o_file->count() > 0;
  if (!o.chat.empty()) {
    SFT_CHECK(!has_text && !has_file, "sft tokenize: --chat cannot be combined with --text/--file");
    SFT_CHECK(o.json, "sft tokenize: --chat prints JSON; add --json");
    run_chat(o);
    return;
  }
  SFT_CHECK(has_text || has_file, "sft tokenize: give --text, --file or --chat");
  SFT_CHECK(!(has_text && has_file), "sft tokenize: give --text or --file, not both");
  SFT_CHECK(!o.add_generation_prompt, "sft tokenize: --add_generation_prompt needs --chat");
  const auto load_start = std::chrono::steady_clock::now();
  const auto tok = tok::Tokenizer::load(o.model);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const std::string input = has_file ? read_file(o.file) : o.text;

  // Documents: the whole input, or one per line (line terminator "\n" removed, a "\r" before it kept).
  std::vector<std::string_view> docs;
  if (o.lines) {
    std::string_view rest = input;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      docs.push_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  } else {
    docs.push_back(input);
  }

  if (o.bench) {
    // Best of `repeat` timed passes over every document (single thread), after one untimed warm-up pass that also
    // fills the word cache, as a long-running trainer would see it.
    std::vector<int32_t> ids;
    size_t n_tokens = 0;
    double best = 1e300;
    for (int r = 0; r <= o.repeat; ++r) {
      n_tokens = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (auto d : docs) {
        ids.clear();
        tok.encode_into(d, o.add_special, ids);
        n_tokens += ids.size();
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) best = std::min(best, s);
    }
    std::printf("bytes %zu docs %zu tokens %zu load_s %.3f encode_s %.4f MB/s %.2f tokens/s %.0f\n", input.size(),
                docs.size(), n_tokens, load_s, best, input.size() / best / 1e6, n_tokens / best);
    return;
  }

  if (o.json) {
    std::printf("[");
    for (size_t d = 0; d < docs.size(); ++d) {
      const auto ids = tok.encode(docs[d], o.add_special);
      std::printf("%s{\"ids\":[", d ? ",\n" : "");
      for (size_t k = 0; k < ids.size(); ++k) std::printf("%s%d", k ? "," : "", ids[k]);
      std::printf("]");
      if (!o.ids_only) {
        std::printf(",\"pieces\":[");
        for (size_t k = 0; k < ids.size(); ++k) std::printf("%s%s", k ? "," : "", json_text::quoted(tok.id_to_token(ids[k])).c_str());
        std::printf("],\"decoded\":%s", json_text::quoted(tok.decode(ids)).c_str());
      }
      std::printf("}");
    }
    std::printf("]\n");
    return;
  }
  for (auto d : docs) {
    const auto ids = tok.encode(d, o.add_special);
    if (o.ids_only) {
      for (size_t k = 0; k < ids.size(); ++k) std::printf("%s%d", k ? " " : "", ids[k]);
      std::printf("\n");
      continue;
    }
    for (int32_t id : ids)
      std::printf("%d\t%s\t%s\n", id, tok.id_to_token(id).c_str(), show_bytes(tok.token_bytes(id)).c_str());
    std::printf("(%zu tokens)\n", ids.size());
  }
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("tokenize", "Show how a model's tokenizer encodes text (ids, pieces, bytes), or time it");
  sub->add_option("--model", opts->model, "HF model folder with tokenizer.json (+ tokenizer_config.json)")->required();
  opts->o_text = sub->add_option("--text", opts->text, "text to encode (\"\" is a valid, empty text)");
  opts->o_file = sub->add_option("--file", opts->file, "encode this file's contents (whole file as one text unless --lines)");
  sub->add_option("--chat", opts->chat,
                  "JSONL of conversations ({\"messages\":[...]} per line): render each with the model's chat template "
                  "(as transformers' apply_chat_template) and print [{\"text\", \"ids\"}] (needs --json)");
  sub->add_flag("--add_generation_prompt", opts->add_generation_prompt,
                "with --chat: end each rendering with the assistant generation prompt");
  sub->add_flag("--add_special_tokens", opts->add_special, "add the post-processor's special tokens (e.g. BOS)");
  sub->add_flag("--json", opts->json, "print JSON: [{ids, pieces, decoded}] per document");
  sub->add_flag("--lines", opts->lines, "treat each line of the input as its own document");
  sub->add_flag("--ids_only", opts->ids_only, "print only ids (one line per document)");
  sub->add_flag("--bench", opts->bench, "time single-threaded encoding of the input and print MB/s");
  sub->add_option("--repeat", opts->repeat, "timed passes for --bench (best is reported)")->check(CLI::PositiveNumber);
  sub->callback([opts] { run(*opts); });
}

}  // namespace sft::cli
