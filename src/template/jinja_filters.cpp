// The Jinja filters that are plain functions of their input and arguments (jinja_filters.h); jinja2's semantics as
// transformers' sandboxed environment runs them, Python's string rules from py_string.h.
#include "template/jinja_filters.h"

#include <algorithm>
#include <optional>

#include "template/jinja_arith.h"
#include "template/jinja_builtins.h"
#include "template/py_string.h"
#include "util/error.h"

namespace sft::jinja {

Value filter_trim(const Value& v, const List& a, const KwArgs& kw) {
  const Value* c = arg(a, kw, 0, "chars");
  std::string chars;
  if (c && !c->is_none()) chars = need_str(*c, "trim");
  return Value(py::strip(v.str(), c && !c->is_none() ? &chars : nullptr, py::Side::Both));
}

// transformers' own tojson (it replaces jinja2's HTML-escaping one): json.dumps(x, ensure_ascii, indent, separators,
// sort_keys) with the arguments in that order.
Value filter_tojson(const Value& v, const List& a, const KwArgs& kw) {
  const Value* ensure_ascii = arg(a, kw, 0, "ensure_ascii");
  SFT_CHECK(!ensure_ascii || !ensure_ascii->truthy(), "tojson(ensure_ascii=True) is not supported");
  const Value* indent = arg(a, kw, 1, "indent");
  const Value* separators = arg(a, kw, 2, "separators");
  SFT_CHECK(!separators || separators->is_none(), "tojson(separators=...) is not supported");
  const Value* sort_keys = arg(a, kw, 3, "sort_keys");
  if (v.is_undefined()) throw Error("tojson of an undefined value");
  // json.dumps: indent=None is compact; an integer indents by that many spaces (' ' * n: none for n <= 0).
  int64_t spaces = -1;
  if (indent && indent->is_int()) spaces = std::max<int64_t>(0, indent->as_int());
  else if (indent && indent->is_bool()) spaces = indent->as_bool() ? 1 : 0;
  else SFT_CHECK(!indent || indent->is_none(), "tojson(indent=...) needs an integer or none");
  return Value(v.to_json(spaces, sort_keys && sort_keys->truthy()));
}

// Python's len(); jinja2's undefined has length 0.
Value filter_length(const Value& v, const List&, const KwArgs&) {
  if (v.is_string()) return Value(static_cast<int64_t>(py::length(v.as_string())));
  if (v.is_list()) return Value(static_cast<int64_t>(v.as_list().size()));
  if (v.is_dict()) return Value(static_cast<int64_t>(v.as_dict().items.size()));
  if (v.is_undefined()) return Value(int64_t{0});
  throw Error(std::string("object of type '") + v.type_name() + "' has no len()");
}

Value filter_string(const Value& v, const List&, const KwArgs&) { return Value(v.str()); }

// Autoescaping is off in transformers' environment, so marking text safe changes nothing.
Value filter_safe(const Value& v, const List&, const KwArgs&) { return v; }

// jinja2's do_int: int(x), else int(float(x)), else the default (first argument, 0 without one).
Value filter_int(const Value& v, const List& a, const KwArgs&) {
  if (v.is_int()) return v;
  if (v.is_bool()) return Value(int64_t{v.as_bool()});
  std::optional<int64_t> x;
  if (v.is_float()) x = arith::float_to_int(v.as_float());
  if (v.is_string() && !(x = arith::parse_int(v.as_string()))) {
    if (const auto d = arith::parse_float(v.as_string())) x = arith::float_to_int(*d);
  }
  if (x) return Value(*x);
  return a.empty() ? Value(int64_t{0}) : a[0];
}

// jinja2's do_float: float(x), else the default (first argument, 0.0 without one).
Value filter_float(const Value& v, const List& a, const KwArgs&) {
  if (v.is_number() || v.is_bool()) return Value(v.as_number());
  if (v.is_string())
    if (const auto d = arith::parse_float(v.as_string())) return Value(*d);
  return a.empty() ? Value(0.0) : a[0];
}

Value filter_lower(const Value& v, const List&, const KwArgs&) { return Value(py::lower(v.str())); }
Value filter_upper(const Value& v, const List&, const KwArgs&) { return Value(py::upper(v.str())); }
Value filter_title(const Value& v, const List&, const KwArgs&) { return Value(py::title(v.str())); }
Value filter_capitalize(const Value& v, const List&, const KwArgs&) { return Value(py::capitalize(v.str())); }

// str.replace(old, new[, count]); a count that is not an integer replaces every occurrence.
Value filter_replace(const Value& v, const List& a, const KwArgs&) {
  SFT_CHECK(a.size() >= 2, "replace filter needs two arguments");
  const int64_t count = a.size() > 2 && a[2].is_int() ? a[2].as_int() : -1;
  return Value(checked_replace(v.str(), a[0].str(), a[1].str(), count));
}

// A dict's (key, value) pairs in insertion order; undefined gives none.
Value filter_items(const Value& v, const List&, const KwArgs&) {
  if (v.is_undefined()) return Value(List{});
  SFT_CHECK(v.is_dict(), "items filter needs a dict");
  List out;
  for (const auto& [k, x] : v.as_dict().items) out.emplace_back(List{Value(k), x});
  return Value(std::move(out));
}

Value filter_abs(const Value& v, const List&, const KwArgs&) { return arith::absolute(v); }

}  // namespace sft::jinja
