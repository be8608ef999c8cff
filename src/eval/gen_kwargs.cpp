#include "eval/gen_kwargs.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "eval/py_literal.h"
#include "util/error.h"

namespace sft::eval {

namespace {

// cli/utils.py split_top_level: commas outside brackets, braces and quotes.
std::vector<std::string> split_top_level(const std::string& s) {
  std::vector<std::string> parts;
  std::string buf;
  int depth = 0;
  char quote = 0;
  for (char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '(' || c == '{') {
      ++depth;
    } else if (c == ']' || c == ')' || c == '}') {
      depth = std::max(depth - 1, 0);
    } else if (c == ',' && depth == 0) {
      parts.push_back(buf);
      buf.clear();
      continue;
    }
    buf += c;
  }
  if (!buf.empty()) parts.push_back(buf);
  return parts;
}

// handle_cli_value_string.
jinja::Value cli_value(const std::string& v) {
  std::string lower;
  for (char c : v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true") return jinja::Value(true);
  if (lower == "false") return jinja::Value(false);
  if (!v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos)
    return jinja::Value(static_cast<int64_t>(std::stoll(v)));
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size()) return jinja::Value(d);
  } catch (const std::exception&) {
  }
  try {
    return py_literal_eval(v, "--gen_kwargs");
  } catch (const Error&) {
    return jinja::Value(v);
  }
}

jinja::Value json_value(const nlohmann::json& j) {
  if (j.is_boolean()) return jinja::Value(j.get<bool>());
  if (j.is_number_integer()) return jinja::Value(j.get<int64_t>());
  if (j.is_number()) return jinja::Value(j.get<double>());
  if (j.is_string()) return jinja::Value(j.get<std::string>());
  if (j.is_array()) {
    jinja::List l;
    for (const auto& x : j) l.push_back(json_value(x));
    return jinja::Value(std::move(l));
  }
  if (j.is_null()) return jinja::Value(jinja::None{});
  throw Error("--gen_kwargs: nested objects are not supported");
}

}  // namespace

GenKwargs parse_gen_kwargs(const std::vector<std::string>& values) {
  std::vector<std::pair<std::string, jinja::Value>> kv;
  nlohmann::json j;
  bool is_json = false;
  if (!values.empty()) {
    try {
      j = nlohmann::json::parse(values[0]);
      is_json = j.is_object();
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (is_json) {
    for (const auto& [k, v] : j.items()) kv.emplace_back(k, json_value(v));
  } else {
    for (const auto& value : values)
      for (const auto& item : split_top_level(value)) {
        const auto eq = item.find('=');
        SFT_CHECK(eq != std::string::npos, "--gen_kwargs: expected key=value, got '", item, "'");
        kv.emplace_back(item.substr(0, eq), cli_value(item.substr(eq + 1)));
      }
  }
  GenKwargs out;
  std::optional<bool> do_sample;
  double temperature = 0;
  int max_priority = 99;
  static const char* kMaxKeys[] = {"max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens"};
  for (const auto& [key, v] : kv) {
    int priority = -1;
    for (int p = 0; p < 4; ++p)
      if (key == kMaxKeys[p]) priority = p;
    if (priority >= 0) {
      SFT_CHECK(v.is_int() && v.as_int() >= 1, "--gen_kwargs: ", key, " must be a positive integer, got ", v.repr());
      if (priority <= max_priority) out.max_gen_toks = v.as_int(), max_priority = priority;
    } else if (key == "until") {
      std::vector<std::string> u;
      if (v.is_string()) {
        u.push_back(v.as_string());
      } else {
        SFT_CHECK(v.is_list(), "--gen_kwargs: until must be a string or a list of strings, got ", v.repr());
        for (const auto& x : v.as_list()) {
          SFT_CHECK(x.is_string(), "--gen_kwargs: until must be a list of strings, got ", v.repr());
          u.push_back(x.as_string());
        }
      }
      out.until = std::move(u);
    } else if (key == "do_sample") {
      SFT_CHECK(v.is_bool(), "--gen_kwargs: do_sample must be true or false, got ", v.repr());
      do_sample = v.as_bool();
    } else if (key == "temperature") {
      SFT_CHECK(v.is_number() || v.is_bool(), "--gen_kwargs: temperature must be a number, got ", v.repr());
      temperature = v.as_number();
    } else {
      throw Error("--gen_kwargs: '" + key + "' is not supported (sft eval generates greedily; keys: max_gen_toks, "
                  "max_new_tokens, max_tokens, max_completion_tokens, until, do_sample=false, temperature=0)");
    }
  }
  // normalize_gen_kwargs: do_sample unset means sampling when temperature > 0.
  const bool sampling = do_sample ? *do_sample : temperature > 0;
  SFT_CHECK(!sampling, "--gen_kwargs: sampling (do_sample=true or temperature > 0) is not supported; sft eval's "
                       "generate_until is greedy, as the leaderboard tasks configure it");
  return out;
}

}  // namespace sft::eval
