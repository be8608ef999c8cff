// Row formats: detection by fields (TRL's rules, alpaca first among the non-TRL ones), validation and conversion of
// one row, and the keep / skip / exclude sink shared by every reader.
#include "data/row_parser.h"

#include <algorithm>

#include "util/error.h"

namespace sft::data {

using json = nlohmann::json;

const char* row_format_name(RowFormat f) {
  switch (f) {
    case RowFormat::Instruction: return "alpaca";
    case RowFormat::Conversational: return "conversational";
    case RowFormat::Text: return "language modelling";
    case RowFormat::PromptCompletion: return "prompt-completion";
    case RowFormat::ConversationalPromptCompletion: return "conversational prompt-completion";
  }
  return "?";
}

DatasetFormat parse_dataset_format(std::string_view name) {
  std::string n(name);
  std::replace(n.begin(), n.end(), '-', '_');
  if (n == "auto") return DatasetFormat::Auto;
  if (n == "alpaca") return DatasetFormat::Alpaca;
  if (n == "language_modeling" || n == "text") return DatasetFormat::LanguageModeling;
  if (n == "prompt_completion") return DatasetFormat::PromptCompletion;
  if (n == "conversational") return DatasetFormat::Conversational;
  throw Error("unknown dataset format \"" + std::string(name) +
              "\" (expected auto, alpaca, language_modeling, prompt_completion or conversational)");
}

const char* dataset_format_name(DatasetFormat f) {
  switch (f) {
    case DatasetFormat::Auto: return "auto";
    case DatasetFormat::Alpaca: return "alpaca";
    case DatasetFormat::LanguageModeling: return "language_modeling";
    case DatasetFormat::PromptCompletion: return "prompt_completion";
    case DatasetFormat::Conversational: return "conversational";
  }
  return "?";
}

namespace detail {
namespace {

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool present(const json& row, const std::string& key) {
  auto it = row.find(key);
  return it != row.end() && !it->is_null();
}

// A string field: absent/null -> missing (error only when required); another type -> wrong type.
std::optional<std::string> string_field(const json& obj, const std::string& key, bool required, std::string& err) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) err = "missing \"" + key + "\"";
    return std::nullopt;
  }
  if (!it->is_string()) {
    err = "\"" + key + "\" must be a string, got " + it->type_name();
    return std::nullopt;
  }
  return it->get<std::string>();
}

// A list of {"role","content"} messages under `field`, appended to out. `first_index` numbers the messages in errors
// (1-based, counted over the whole conversation); a system message may only open the conversation.
std::string parse_messages(const json& row, const std::string& field, size_t first_index, std::vector<Message>& out) {
  auto it = row.find(field);
  if (it == row.end() || it->is_null()) return "missing \"" + field + "\"";
  if (!it->is_array() || it->empty())
    return "\"" + field + "\" must be a non-empty array" + (it->is_string() ? " of messages, got a string" : "");
  std::string err;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const size_t index = first_index + i;
    std::string where = (field == "messages" ? "" : "\"" + field + "\" ") + "message " + std::to_string(index) + ": ";
    if (!m.is_object()) return where + "expected an object with \"role\" and \"content\"";
    auto role = string_field(m, "role", true, err);
    if (!role) return where + err;
    auto content = string_field(m, "content", true, err);
    if (!content) return where + err;
    if (*role != "system" && *role != "user" && *role != "assistant")
      return where + "role must be system, user or assistant, got \"" + *role + "\"";
    if (*role == "system" && index != 1) return where + "a system message must come first";
    out.push_back({*role, *content});
  }
  return "";
}

bool templated(RowFormat f) { return f == RowFormat::Instruction || f == RowFormat::Conversational; }

}  // namespace

bool has_empty_response(const Example& ex) {
  switch (ex.format) {
    case RowFormat::Text: return is_blank(ex.text);
    case RowFormat::PromptCompletion: return is_blank(ex.completion);
    case RowFormat::ConversationalPromptCompletion:
      return std::all_of(ex.completion_messages.begin(), ex.completion_messages.end(),
                         [](const Message& m) { return is_blank(m.content); });
    case RowFormat::Instruction:
    case RowFormat::Conversational: break;
  }
  if (!ex.is_chat()) return is_blank(ex.output);
  for (const auto& m : ex.messages)
    if (m.role == "assistant" && !is_blank(m.content)) return false;
  return true;
}

void RowSink::fail(const std::string& msg) {
  ++out_.rows_seen;
  if (!opts_.skip_bad_rows) throw Error(msg);
  ++out_.rows_skipped;
  if (out_.skip_messages.size() < 10) out_.skip_messages.push_back(msg);
}

void RowSink::add(Example&& ex) {
  ++out_.rows_seen;
  if (!opts_.keep_empty_responses && has_empty_response(ex)) {
    ++out_.rows_empty_response;
    if (out_.empty_response_rows.size() < 5) out_.empty_response_rows.push_back(ex.origin);
    return;
  }
  out_.examples.push_back(std::move(ex));
}

std::vector<std::string> RowParser::known_fields() const {
  std::vector<std::string> f = {"instruction", "input", "output", "messages", "prompt", "completion"};
  if (std::find(f.begin(), f.end(), opts_.dataset_text_field) == f.end()) f.push_back(opts_.dataset_text_field);
  return f;
}

std::string RowParser::fields_of(RowFormat f) const {
  switch (f) {
    case RowFormat::Instruction: return "\"instruction\" and \"output\"";
    case RowFormat::Conversational: return "\"messages\"";
    case RowFormat::Text: return "\"" + opts_.dataset_text_field + "\"";
    case RowFormat::PromptCompletion: return "\"prompt\" and \"completion\" strings";
    case RowFormat::ConversationalPromptCompletion: return "\"prompt\" and \"completion\" message lists";
  }
  return "?";
}

std::optional<RowFormat> RowParser::detect(const json& row) const {
  auto prompt_completion = [&] {
    return present(row, "prompt") && row["prompt"].is_array() ? RowFormat::ConversationalPromptCompletion
                                                              : RowFormat::PromptCompletion;
  };
  switch (opts_.dataset_format) {
    case DatasetFormat::Alpaca: return RowFormat::Instruction;
    case DatasetFormat::LanguageModeling: return RowFormat::Text;
    case DatasetFormat::Conversational: return RowFormat::Conversational;
    case DatasetFormat::PromptCompletion: return prompt_completion();
    case DatasetFormat::Auto: break;
  }
  if (present(row, "prompt")) return prompt_completion();
  if (present(row, "messages")) return RowFormat::Conversational;
  if (present(row, "instruction")) return RowFormat::Instruction;
  if (present(row, opts_.dataset_text_field)) return RowFormat::Text;
  return std::nullopt;
}

std::string RowParser::parse(const json& row, const std::string& origin, Example& ex) {
  if (!row.is_object()) return std::string("expected a JSON object, got ") + row.type_name();
  std::optional<RowFormat> format = detect(row);
  if (!first_format_) {
    if (!format)
      return "no known fields: expected \"instruction\" and \"output\" (alpaca), \"messages\" (conversational), "
             "\"prompt\" and \"completion\" (prompt-completion) or \"" + opts_.dataset_text_field +
             "\" (language modelling)";
    first_format_ = format;
    first_origin_ = origin;
  }
  if (!format) format = templated(*first_format_) ? RowFormat::Instruction : *first_format_;
  const bool compatible = *format == *first_format_ || (templated(*format) && templated(*first_format_));
  if (!compatible)
    return "mixed formats: this row has " + fields_of(*format) + " (" + row_format_name(*format) + ") but " +
           first_origin_ + " has " + fields_of(*first_format_) + " (" + row_format_name(*first_format_) +
           "); one file holds one format";
  ex.format = *format;
  return parse_as(*format, row, ex);
}

std::string RowParser::parse_as(RowFormat f, const json& row, Example& ex) const {
  std::string err;
  switch (f) {
    case RowFormat::Conversational: {
      err = parse_messages(row, "messages", 1, ex.messages);
      if (!err.empty()) return err;
      const bool has_assistant =
          std::any_of(ex.messages.begin(), ex.messages.end(), [](const Message& m) { return m.role == "assistant"; });
      return has_assistant ? "" : "\"messages\" has no assistant turn (nothing to train on)";
    }
    case RowFormat::Text: {
      auto text = string_field(row, opts_.dataset_text_field, true, err);
      if (!text) return err;
      ex.text = std::move(*text);
      return "";
    }
    case RowFormat::PromptCompletion: {
      auto prompt = string_field(row, "prompt", true, err);
      if (!prompt) return err;
      auto completion = string_field(row, "completion", true, err);
      if (!completion) return err;
      ex.prompt = std::move(*prompt);
      ex.completion = std::move(*completion);
      return "";
    }
    case RowFormat::ConversationalPromptCompletion: {
      err = parse_messages(row, "prompt", 1, ex.prompt_messages);
      if (!err.empty()) return err;
      return parse_messages(row, "completion", ex.prompt_messages.size() + 1, ex.completion_messages);
    }
    case RowFormat::Instruction: break;
  }
  auto instruction = string_field(row, "instruction", true, err);
  if (!instruction) return err;
  auto output = string_field(row, "output", true, err);
  if (!output) return err;
  auto input = string_field(row, "input", false, err);
  if (!err.empty()) return err;
  ex.instruction = std::move(*instruction);
  ex.output = std::move(*output);
  ex.input = input ? std::move(*input) : std::string();
  return "";
}

}  // namespace detail
}  // namespace sft::data
