// Built-ins of the Jinja subset: global functions and the Python str/dict methods chat templates call.
#include "template/jinja_builtins.h"

#include <ctime>

#include "template/py_string.h"
#include "util/error.h"

namespace sft::jinja {

Value make_fn(std::string name, std::function<Value(const List&, const KwArgs&)> f) {
  auto fn = std::make_shared<Function>();
  fn->name = std::move(name);
  fn->call = std::move(f);
  return Value(fn);
}

const Value* kwarg(const KwArgs& kw, const char* name) {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

// Positional-or-keyword argument i / name, or nullptr.
const Value* arg(const List& a, const KwArgs& kw, size_t i, const char* name) {
  if (i < a.size()) return &a[i];
  return kwarg(kw, name);
}

std::string need_str(const Value& v, const char* what) {
  SFT_CHECK(v.is_string(), "chat template: ", what, " expects a string, got ", v.type_name());
  return v.as_string();
}

std::string checked_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  int64_t n = py::count(s, old);  // Python inserts repl at every code point boundary when old is empty
  if (count >= 0) n = std::min(n, count);
  size_t growth = 0;
  if (repl.size() > old.size() &&
      __builtin_mul_overflow(static_cast<size_t>(n), repl.size() - old.size(), &growth))
    growth = SIZE_MAX;
  check_value_room(s.size() > SIZE_MAX - growth ? SIZE_MAX : s.size() + growth);
  return py::replace(s, old, repl, count);
}

Value builtin_global(const std::string& name) {
  if (name == "raise_exception")
    return make_fn(name, [](const List& a, const KwArgs&) -> Value {
      throw Error("chat template raised an exception: " + (a.empty() ? std::string() : a[0].str()));
    });
  if (name == "namespace")
    return make_fn(name, [](const List& a, const KwArgs& kw) -> Value {
      auto ns = std::make_shared<Namespace>();
      for (const auto& v : a) {
        SFT_CHECK(v.is_dict(), "chat template: namespace() takes keyword arguments or a dict");
        for (const auto& [k, x] : v.as_dict().items) ns->attrs.set(k, x);
      }
      for (const auto& [k, v] : kw) ns->attrs.set(k, v);
      return Value(ns);
    });
  if (name == "dict")
    return make_fn(name, [](const List& a, const KwArgs& kw) -> Value {
      Dict d;
      for (const auto& v : a) {
        SFT_CHECK(v.is_dict(), "chat template: dict() takes keyword arguments or a dict");
        for (const auto& [k, x] : v.as_dict().items) d.set(k, x);
      }
      for (const auto& [k, v] : kw) d.set(k, v);
      return Value(std::move(d));
    });
  if (name == "range")
    return make_fn(name, [](const List& a, const KwArgs&) -> Value {
      SFT_CHECK(!a.empty() && a.size() <= 3, "chat template: range() takes 1 to 3 arguments");
      for (const auto& v : a) SFT_CHECK(v.is_int(), "chat template: range() needs integers");
      int64_t start = 0, stop = 0, step = 1;
      if (a.size() == 1) stop = a[0].as_int();
      else {
        start = a[0].as_int();
        stop = a[1].as_int();
        if (a.size() == 3) step = a[2].as_int();
      }
      SFT_CHECK(step != 0, "chat template: range() step must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        SFT_CHECK(out.size() < 100000, "chat template: range() larger than 100000 (jinja's sandbox limit)");
        out.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;  // the next value would pass int64: past stop anyway
      }
      return Value(std::move(out));
    });
  if (name == "strftime_now")
    return make_fn(name, [](const List& a, const KwArgs&) -> Value {
      SFT_CHECK(a.size() == 1 && a[0].is_string(), "chat template: strftime_now(format) needs a format string");
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, a[0].as_string().c_str(), &tm);
      return Value(std::string(buf, n));
    });
  return Value();
}

Value dict_method(const Value& obj, const std::string& name) {
  return make_fn("dict." + name, [obj, name](const List& a, const KwArgs&) -> Value {
    const Dict& d = obj.as_dict();
    if (name == "get") {
      SFT_CHECK(!a.empty() && a.size() <= 2, "chat template: dict.get() takes 1 or 2 arguments");
      const Value* v = a[0].is_string() ? d.find(a[0].as_string()) : nullptr;
      return v ? *v : (a.size() > 1 ? a[1] : Value(None{}));
    }
    List out;
    for (const auto& [k, v] : d.items) {
      if (name == "keys") out.emplace_back(k);
      else if (name == "values") out.push_back(v);
      else out.emplace_back(List{Value(k), v});
    }
    return Value(std::move(out));
  });
}

bool is_string_method(const std::string& name) {
  static const char* known[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "upper",
                                "lower", "title", "capitalize", "replace", "find", "count", "join"};
  for (const char* k : known)
    if (name == k) return true;
  return false;
}

Value string_method(const Value& obj, const std::string& name) {
  return make_fn("str." + name, [obj, name](const List& a, const KwArgs& kw) -> Value {
    const std::string& s = obj.as_string();
    if (name == "startswith" || name == "endswith") {
      SFT_CHECK(a.size() == 1, "chat template: str.", name, "() takes one argument");
      List opts = a[0].is_list() ? a[0].as_list() : List{a[0]};
      for (const auto& o : opts) {
        const std::string p = need_str(o, name.c_str());
        if (name == "startswith" ? s.compare(0, p.size(), p) == 0 && s.size() >= p.size()
                                 : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
          return Value(true);
      }
      return Value(false);
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const Value* c = arg(a, kw, 0, "chars");
      std::string chars;
      if (c && !c->is_none()) chars = need_str(*c, name.c_str());
      const auto side = name == "strip" ? py::Side::Both : name == "lstrip" ? py::Side::Left : py::Side::Right;
      return Value(py::strip(s, c && !c->is_none() ? &chars : nullptr, side));
    }
    if (name == "split") {
      const Value* sep = arg(a, kw, 0, "sep");
      const Value* mx = arg(a, kw, 1, "maxsplit");
      std::string sp;
      if (sep && !sep->is_none()) sp = need_str(*sep, "split");
      const int64_t maxsplit = mx && mx->is_int() ? mx->as_int() : -1;
      List out;
      py::split(s, sep && !sep->is_none() ? &sp : nullptr, maxsplit,
                [&out](std::string part) { out.emplace_back(std::move(part)); });
      return Value(std::move(out));
    }
    if (name == "upper") return Value(py::upper(s));
    if (name == "lower") return Value(py::lower(s));
    if (name == "title") return Value(py::title(s));
    if (name == "capitalize") return Value(py::capitalize(s));
    if (name == "replace") {
      SFT_CHECK(a.size() >= 2, "chat template: str.replace() needs two arguments");
      const int64_t count = a.size() > 2 && a[2].is_int() ? a[2].as_int() : -1;
      return Value(checked_replace(s, need_str(a[0], "replace"), need_str(a[1], "replace"), count));
    }
    if (name == "find") {
      SFT_CHECK(a.size() == 1, "chat template: str.find() takes one argument");
      const std::string sub = need_str(a[0], "find");
      const size_t f = py::Finder(sub).find(s);
      if (f == std::string::npos) return Value(int64_t{-1});
      return Value(static_cast<int64_t>(py::length(std::string_view(s).substr(0, f))));
    }
    if (name == "count") {
      SFT_CHECK(a.size() == 1, "chat template: str.count() takes one argument");
      return Value(py::count(s, need_str(a[0], "count")));
    }
    // join
    SFT_CHECK(a.size() == 1 && a[0].is_list(), "chat template: str.join() needs a list");
    std::string out;
    const auto& l = a[0].as_list();
    for (size_t i = 0; i < l.size(); ++i) {
      if (i) out += s;
      out += need_str(l[i], "join");
      check_value_room(out.size());  // the separator repeats once per item: 'x' * 10**6 joining a long list
    }
    return Value(std::move(out));
  });
}


}  // namespace sft::jinja
