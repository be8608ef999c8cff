// Built-ins of the Jinja subset (internal to src/template): raise_exception, namespace, dict, range, strftime_now,
// the str and dict methods, and argument helpers shared with the filters.
#pragma once
#include <functional>
#include <string>

#include "template/value.h"

namespace sft::jinja {

Value make_fn(std::string name, std::function<Value(const List&, const KwArgs&)> f);
const Value* kwarg(const KwArgs& kw, const char* name);
// Positional-or-keyword argument i / name, or nullptr.
const Value* arg(const List& a, const KwArgs& kw, size_t i, const char* name);
std::string need_str(const Value& v, const char* what);
// Python's str.replace, its result size checked against the value budget before it is built.
std::string checked_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);

// A global the template can call (undefined Value when `name` is none of them).
Value builtin_global(const std::string& name);
// Bound dict methods items/keys/values/get.
Value dict_method(const Value& obj, const std::string& name);
bool is_string_method(const std::string& name);
// A bound str method; name must satisfy is_string_method.
Value string_method(const Value& obj, const std::string& name);

}  // namespace sft::jinja
