// Driver for test_python_re_literal.py: our ports of Python's re.findall / re.sub, ast.literal_eval, str.lower, and
// lm-eval's RegexFilter / exact_match, applied to inputs read as JSON from stdin, so the test can compare them with
// CPython and lm-eval themselves. Errors come back per item as {"error": message}.
// stdin:  {"findall": [[pattern, text]...], "sub": [[pattern, text]...], "literal": [text...], "lower": [text...],
//          "repr": [text...], "filter": [[pattern, group_select, text]...], "exact_match": [[pred, ref]...]}
// stdout: the same keys with one result per item (exact_match uses the gsm8k row's metric settings).
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "eval/filters.h"
#include "eval/py_literal.h"
#include "eval/py_regex.h"
#include "eval/task_spec.h"
#include "template/value.h"
#include "util/error.h"

using nlohmann::json;

json to_json(const sft::jinja::Value& v) {
  if (v.is_list()) {
    json a = json::array();
    for (const auto& x : v.as_list()) a.push_back(to_json(x));
    return {{"list", a}};
  }
  if (v.is_string()) return {{"str", v.as_string()}};
  if (v.is_int()) return {{"int", v.as_int()}};
  if (v.is_float()) return {{"float", v.as_float()}};
  if (v.is_bool()) return {{"bool", v.as_bool()}};
  return {{"none", nullptr}};
}

template <class F>
json guarded(F&& f) {
  try {
    return f();
  } catch (const sft::Error& e) {
    return {{"error", e.what()}};
  }
}

int main() {
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const json req = json::parse(in);
  json out = json::object();
  for (const auto& p : req.value("findall", json::array()))
    out["findall"].push_back(guarded([&] {
      return json(sft::eval::PyRegex(p[0].get<std::string>(), "test").findall(p[1].get<std::string>()));
    }));
  for (const auto& p : req.value("sub", json::array()))
    out["sub"].push_back(guarded([&] {
      return json(sft::eval::PyRegex(p[0].get<std::string>(), "test").sub(p[1].get<std::string>(), "<>"));
    }));
  for (const auto& t : req.value("literal", json::array()))
    out["literal"].push_back(guarded([&] { return to_json(sft::eval::py_literal_eval(t.get<std::string>(), "test")); }));
  for (const auto& t : req.value("lower", json::array())) out["lower"].push_back(sft::eval::py_lower(t.get<std::string>()));
  for (const auto& t : req.value("repr", json::array()))  // the template engine's repr of a list, read back
    out["repr"].push_back(guarded([&] {
      const std::string r = sft::jinja::Value(sft::jinja::List{sft::jinja::Value(t.get<std::string>())}).repr();
      return to_json(sft::eval::py_literal_eval(r, "test"));
    }));
  for (const auto& p : req.value("filter", json::array()))
    out["filter"].push_back(guarded([&] {
      sft::eval::FilterSpec f{"test", {{sft::eval::FilterStep::Kind::Regex, p[0].get<std::string>(), p[1].get<int>()}, {}}};
      return json(sft::eval::AnswerFilter(f).apply(p[2].get<std::string>()));
    }));
  const sft::eval::TaskSpec* gsm8k = sft::eval::find_task_spec("gsm8k");
  for (const auto& p : req.value("exact_match", json::array()))
    out["exact_match"].push_back(guarded([&] {
      return json(sft::eval::ExactMatch(gsm8k->metrics.at(0)).score(p[0].get<std::string>(), p[1].get<std::string>()));
    }));
  std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}
