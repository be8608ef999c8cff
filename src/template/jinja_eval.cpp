// Evaluator of the Jinja subset: scopes, statements, expressions, filters, tests, Python methods.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <ctime>
#include <string_view>
#include <unordered_map>

#include "template/jinja.h"
#include "template/jinja_arith.h"
#include "template/jinja_ast.h"
#include "template/jinja_builtins.h"
#include "template/jinja_filters.h"
#include "template/py_string.h"
#include "util/error.h"

namespace sft::jinja {

struct Template::Impl {
  std::string name;
  std::vector<Node> nodes;
  bool has_generation = false;
};

namespace {

bool contains_generation(const std::vector<Node>& nodes) {
  for (const auto& n : nodes) {
    if (n.kind == Node::Kind::Generation) return true;
    for (const auto& b : n.branches)
      if (contains_generation(b.second)) return true;
    if (contains_generation(n.body) || contains_generation(n.else_body)) return true;
  }
  return false;
}

enum class Flow { Normal, Break, Continue };

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}


class Renderer {
 public:
  Renderer(const Template::Impl& t, const Dict& ctx, const RenderLimits& lim)
      : t_(t), ctx_(ctx), lim_(lim),
        deadline_(std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(std::min(lim.max_seconds, 1e9)))) {
    frames_.emplace_back();
  }

  RenderResult run() {
    exec_body(t_.nodes);
    return std::move(res_);
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw Error(t_.name + ":" + std::to_string(line) + ": " + what);
  }

  void emit(const std::string& s, int line) {
    if (res_.text.size() + s.size() > lim_.max_output_bytes)
      fail(line, "rendered output exceeds " + std::to_string(lim_.max_output_bytes) + " bytes");
    res_.text += s;
  }

  // ---- scopes
  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    if (const Value* v = ctx_.find(name)) return *v;
    return builtin(name);
  }
  Value builtin(const std::string& name) const { return builtin_global(name); }
  void assign(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

  // ---- statements
  // Every 1024 statements/expressions: past the deadline, stop with the line being evaluated.
  void tick(int line) {
    if ((++ticks_ & 1023) == 0 && std::chrono::steady_clock::now() > deadline_)
      fail(line, "rendering took longer than " + seconds_text(lim_.max_seconds) + " s (sft bounds a chat template's time)");
  }

  Flow exec_body(const std::vector<Node>& nodes) {
    if (++depth_ > lim_.max_depth) fail(nodes.empty() ? 0 : nodes[0].line, "template nested too deeply");
    if (!nodes.empty()) tick(nodes[0].line);
    for (const auto& n : nodes) {
      Flow f = Flow::Normal;
      try {
        f = exec(n);
      } catch (const ValueLimitError& err) {
        fail(n.line, err.what());  // values made by the statement itself (loop variables, assignments)
      }
      if (f != Flow::Normal) {
        --depth_;
        return f;
      }
    }
    --depth_;
    return Flow::Normal;
  }

  Flow exec(const Node& n) {
    switch (n.kind) {
      case Node::Kind::Text: emit(n.text, n.line); return Flow::Normal;
      case Node::Kind::Output: emit(eval(*n.expr).str(), n.line); return Flow::Normal;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (eval(*cond).truthy()) return exec_body(body);
        return exec_body(n.else_body);
      case Node::Kind::Set: {
        Value v = eval(*n.expr);
        if (!n.attr.empty()) {
          Value ns = lookup(n.targets[0]);
          if (!ns.is_namespace()) fail(n.line, "cannot set attribute '" + n.attr + "' of a non-namespace '" + n.targets[0] + "'");
          // The namespace is the one mutable object; one inside another's attribute could form a reference cycle.
          if (v.holds_namespace())
            fail(n.line, "cannot store a namespace in the attribute '" + n.attr + "' of a namespace (not supported)");
          ns.as_namespace().attrs.set(n.attr, std::move(v));
        } else if (n.targets.size() == 1) {
          assign(n.targets[0], std::move(v));
        } else {
          const List items = iterate(v, n.line);
          if (items.size() != n.targets.size()) fail(n.line, "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(n.targets.size()) + " names");
          for (size_t i = 0; i < items.size(); ++i) assign(n.targets[i], items[i]);
        }
        return Flow::Normal;
      }
      case Node::Kind::SetBlock: {
        std::string saved;
        saved.swap(res_.text);
        const auto spans = res_.generation_spans.size();
        exec_body(n.body);
        std::string captured;
        captured.swap(res_.text);
        res_.text.swap(saved);
        res_.generation_spans.resize(spans);
        assign(n.targets[0], Value(std::move(captured)));
        return Flow::Normal;
      }
      case Node::Kind::Generation: {
        const size_t b = res_.text.size();
        const Flow f = exec_body(n.body);
        res_.generation_spans.emplace_back(b, res_.text.size());
        return f;
      }
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::For: return exec_for(n);
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n) {
    List items = iterate(eval(*n.expr), n.line);
    if (n.loop_filter) {
      List kept;
      for (auto& it : items) {
        frames_.emplace_back();
        bind_targets(n, it);
        const bool keep = eval(*n.loop_filter).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(std::move(it));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec_body(n.else_body);
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      if (++iterations_ > lim_.max_loop_iterations) fail(n.line, "too many loop iterations");
      tick(n.line);
      frames_.emplace_back();
      bind_targets(n, items[static_cast<size_t>(i)]);
      Dict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(len - i));
      loop.set("revindex0", Value(len - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == len - 1));
      loop.set("length", Value(len));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value());
      loop.set("nextitem", i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value());
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      frames_.back()["loop"] = Value(std::move(loop));
      const Flow f = exec_body(n.body);
      frames_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      frames_.back()[n.targets[0]] = item;
      return;
    }
    const List parts = iterate(item, n.line);
    if (parts.size() != n.targets.size()) fail(n.line, "cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(n.targets.size()) + " loop variables");
    for (size_t k = 0; k < parts.size(); ++k) frames_.back()[n.targets[k]] = parts[k];
  }

  // Python iteration: list items, dict keys, string code points, undefined = nothing.
  List iterate(const Value& v, int line) const {
    if (v.is_list()) return v.as_list();
    if (v.is_dict()) {
      List keys;
      for (const auto& kv : v.as_dict().items) keys.emplace_back(kv.first);
      return keys;
    }
    if (v.is_string()) {
      const auto cps = py::code_points(v.as_string());
      List out;
      for (size_t i = 0; i < cps.size(); ++i) out.emplace_back(py::from_code_points(cps, i, i + 1));
      return out;
    }
    if (v.is_undefined()) return {};
    fail(line, std::string("'") + v.type_name() + "' object is not iterable");
  }

  // ---- expressions
  Value eval(const Expr& e) {
    if (++depth_ > lim_.max_depth) fail(e.line, "expression nested too deeply");
    tick(e.line);
    try {
      Value v = eval_inner(e);
      --depth_;
      return v;
    } catch (const ValueLimitError& err) {
      fail(e.line, err.what());  // the innermost expression that ran out names its line
    }
  }

  Value eval_inner(const Expr& e) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::Literal: return e.literal;
      case K::Name: return lookup(e.name);
      case K::List:
      case K::Tuple: {
        List l;
        for (const auto& a : e.args) l.push_back(eval(*a));
        return Value(std::move(l));
      }
      case K::Dict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i]);
          if (!k.is_string()) fail(e.line, "only string keys are supported in dict literals");
          d.set(k.as_string(), eval(*e.args[i + 1]));
        }
        return Value(std::move(d));
      }
      case K::Attr: {
        const Value obj = eval(*e.args[0]);
        if (obj.is_undefined()) fail(e.line, "'" + describe(*e.args[0]) + "' is undefined (accessing ." + e.name + ")");
        return get_attr(obj, e.name, e.line);
      }
      case K::Index: {
        const Value obj = eval(*e.args[0]);
        const Value key = eval(*e.args[1]);
        if (obj.is_undefined()) fail(e.line, "'" + describe(*e.args[0]) + "' is undefined (subscript)");
        return get_item(obj, key, e.line);
      }
      case K::Slice: return slice(e);
      case K::Call: {
        const Value fn = eval(*e.args[0]);
        List args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
        KwArgs kw;
        for (const auto& [k, v] : e.kwargs) kw.emplace_back(k, eval(*v));
        if (!fn.is_function()) {
          if (fn.is_undefined()) fail(e.line, "'" + describe(*e.args[0]) + "' is undefined");
          fail(e.line, std::string("'") + fn.type_name() + "' object is not callable");
        }
        try {
          return fn.as_function().call(args, kw);
        } catch (const Error& err) {
          fail(e.line, err.what());
        }
      }
      case K::Filter: return filter(e);
      case K::Test: {
        const bool r = test(e);
        return Value(e.negated ? !r : r);
      }
      case K::Unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (e.name == "-") {
          try {
            return arith::negate(v);
          } catch (const Error& err) {
            fail(e.line, err.what());
          }
        }
        if (v.is_int() || v.is_float()) return v;
        if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
        fail(e.line, std::string("bad operand type for unary +: '") + v.type_name() + "'");
      }
      case K::Binary: return binary(e);
      case K::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right, e.line)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case K::Cond: {
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args.size() > 2 ? eval(*e.args[2]) : Value();
      }
    }
    return Value();
  }

  static std::string describe(const Expr& e) {
    if (e.kind == Expr::Kind::Name) return e.name;
    if (e.kind == Expr::Kind::Attr) return describe(*e.args[0]) + "." + e.name;
    if (e.kind == Expr::Kind::Index) return describe(*e.args[0]) + "[...]";
    return "expression";
  }

  bool compare(const std::string& op, const Value& a, const Value& b, int line) const {
    try {
      if (op == "==") return values_equal(a, b);
      if (op == "!=") return !values_equal(a, b);
      if (op == "<") return value_less(a, b);
      if (op == ">") return value_less(b, a);
      if (op == "<=") return !value_less(b, a);
      if (op == ">=") return !value_less(a, b);
      if (op == "in") return contains(b, a, line);
      if (op == "not in") return !contains(b, a, line);
    } catch (const Error& err) {
      fail(line, err.what());
    }
    fail(line, "unknown comparison " + op);
  }

  bool contains(const Value& container, const Value& item, int line) const {
    if (container.is_string()) {
      if (!item.is_string()) fail(line, "'in <string>' requires string as left operand");
      return py::Finder(item.as_string()).find(container.as_string()) != std::string::npos;
    }
    if (container.is_list()) {
      for (const auto& x : container.as_list())
        if (values_equal(x, item)) return true;
      return false;
    }
    if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    if (container.is_undefined()) return false;
    fail(line, std::string("argument of type '") + container.type_name() + "' is not iterable");
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? eval(*e.args[1]) : l;
    }
    if (op == "or") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? l : eval(*e.args[1]);
    }
    const Value a = eval(*e.args[0]);
    const Value b = eval(*e.args[1]);
    try {
      return arith::binary(op, a, b);
    } catch (const ValueLimitError&) {
      throw;  // eval() names the line
    } catch (const Error& err) {
      fail(e.line, err.what());
    }
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.args[0]);
    auto opt = [&](size_t k) -> std::optional<int64_t> {
      if (!e.args[k]) return std::nullopt;
      const Value v = eval(*e.args[k]);
      if (v.is_none()) return std::nullopt;
      if (!v.is_int()) fail(e.line, "slice indices must be integers");
      return v.as_int();
    };
    const auto start = opt(1), stop = opt(2), step_o = opt(3);
    const int64_t step = step_o.value_or(1);
    if (step == 0) fail(e.line, "slice step cannot be zero");
    std::vector<uint32_t> cps;
    int64_t n = 0;
    if (obj.is_list()) n = static_cast<int64_t>(obj.as_list().size());
    else if (obj.is_string()) {
      cps = py::code_points(obj.as_string());
      n = static_cast<int64_t>(cps.size());
    } else fail(e.line, std::string("'") + obj.type_name() + "' object is not subscriptable");
    // Python's slice.indices()
    auto norm = [&](std::optional<int64_t> v, int64_t def_pos, int64_t def_neg) {
      if (!v) return step > 0 ? def_pos : def_neg;
      int64_t x = *v;
      if (x < 0) x += n;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t b = norm(start, 0, n - 1), en = norm(stop, n, -1);
    // i + step may pass int64's range (s[1::9223372036854775807]): that index is past the end anyway, so stop.
    List out;
    std::vector<uint32_t> sel;
    for (int64_t i = b; step > 0 ? i < en : i > en;) {
      if (obj.is_list()) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
      else sel.push_back(cps[static_cast<size_t>(i)]);
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    if (obj.is_list()) return Value(std::move(out));
    return Value(py::from_code_points(sel, 0, sel.size()));
  }

  Value get_item(const Value& obj, const Value& key, int line) {
    if (obj.is_dict()) {
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
        return get_attr(obj, key.as_string(), line);
      }
      return Value();
    }
    if (obj.is_list() || obj.is_string()) {
      if (!key.is_int() && !key.is_bool()) return key.is_string() ? get_attr(obj, key.as_string(), line) : Value();
      int64_t i = key.is_bool() ? int64_t{key.as_bool()} : key.as_int();
      if (obj.is_list()) {
        const auto n = static_cast<int64_t>(obj.as_list().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value();
        return obj.as_list()[static_cast<size_t>(i)];
      }
      const auto cps = py::code_points(obj.as_string());
      const auto n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return Value(py::from_code_points(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
    }
    if (obj.is_namespace() && key.is_string()) return get_attr(obj, key.as_string(), line);
    return Value();
  }

  Value get_attr(const Value& obj, const std::string& name, int line) {
    if (obj.is_namespace()) {
      const Value* v = obj.as_namespace().attrs.find(name);
      return v ? *v : Value();
    }
    if (obj.is_dict()) {
      if (name == "items" || name == "keys" || name == "values" || name == "get") return dict_method(obj, name);
      if (name == "pop" || name == "update" || name == "clear" || name == "setdefault" || name == "popitem" ||
          name == "copy")
        fail(line, "dict." + name + "() is not supported (the sandbox forbids mutation)");
      const Value* v = obj.as_dict().find(name);
      return v ? *v : Value();
    }
    if (obj.is_string()) return string_method(obj, name, line);
    if (obj.is_list()) {
      if (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
          name == "sort" || name == "reverse" || name == "clear")
        fail(line, "list." + name + "() is not supported (the sandbox forbids mutation)");
      if (name == "index" || name == "count")
        return make_fn("list." + name, [obj, name](const List& a, const KwArgs&) -> Value {
          SFT_CHECK(a.size() == 1, "chat template: list.", name, "() takes one argument");
          int64_t n = 0;
          const auto& l = obj.as_list();
          for (size_t i = 0; i < l.size(); ++i)
            if (values_equal(l[i], a[0])) {
              if (name == "index") return Value(static_cast<int64_t>(i));
              ++n;
            }
          SFT_CHECK(name == "count", "chat template: list.index(x): x not in list");
          return Value(n);
        });
      return Value();
    }
    return Value();
  }

  Value string_method(const Value& obj, const std::string& name, int line) {
    if (!is_string_method(name)) fail(line, "str." + name + " is not supported by sft's template engine");
    return jinja::string_method(obj, name);
  }

  // ---- filters: `default` reads its own arguments; every other filter gets its input and evaluated arguments and is
  // looked up by name in find_filter's table (the pure ones live in jinja_filters.cpp).
  struct FilterCall {
    const Expr& e;  // the filter expression: its name and line
    const Value& v;
    const List& a;
    const KwArgs& kw;
  };
  using FilterFn = Value (Renderer::*)(const FilterCall&);
  static FilterFn find_filter(std::string_view name);
  template <Value (*F)(const Value&, const List&, const KwArgs&)>
  Value pure(const FilterCall& c) {
    return F(c.v, c.a, c.kw);
  }
  Value filter(const Expr& e);
  Value filter_default(const Expr& e);
  Value filter_join(const FilterCall& c);
  Value filter_first(const FilterCall& c);
  Value filter_last(const FilterCall& c);
  Value filter_list(const FilterCall& c);
  Value filter_reverse(const FilterCall& c);
  Value filter_selectattr(const FilterCall& c) { return select_by_attr(c, true); }
  Value filter_rejectattr(const FilterCall& c) { return select_by_attr(c, false); }
  Value select_by_attr(const FilterCall& c, bool select);
  Value filter_map(const FilterCall& c);
  List eval_args(const Expr& e);  // positional arguments after the input, evaluated in order
  KwArgs eval_kwargs(const Expr& e);
  bool test(const Expr& e);

  const Template::Impl& t_;
  const Dict& ctx_;
  const RenderLimits& lim_;
  std::vector<std::unordered_map<std::string, Value>> frames_;
  RenderResult res_;
  int depth_ = 0;
  int64_t iterations_ = 0;
  uint64_t ticks_ = 0;
  std::chrono::steady_clock::time_point deadline_;
};

List Renderer::eval_args(const Expr& e) {
  List a;
  for (size_t i = 1; i < e.args.size(); ++i) a.push_back(eval(*e.args[i]));
  return a;
}

KwArgs Renderer::eval_kwargs(const Expr& e) {
  KwArgs kw;
  for (const auto& [k, x] : e.kwargs) kw.emplace_back(k, eval(*x));
  return kw;
}

// Every filter but `default`, by name. A linear scan: the table is short and a template calls few filters.
Renderer::FilterFn Renderer::find_filter(std::string_view name) {
  static constexpr std::pair<std::string_view, FilterFn> kFilters[] = {
      {"trim", &Renderer::pure<filter_trim>},
      {"tojson", &Renderer::pure<filter_tojson>},
      {"length", &Renderer::pure<filter_length>},
      {"count", &Renderer::pure<filter_length>},
      {"string", &Renderer::pure<filter_string>},
      {"safe", &Renderer::pure<filter_safe>},
      {"int", &Renderer::pure<filter_int>},
      {"float", &Renderer::pure<filter_float>},
      {"lower", &Renderer::pure<filter_lower>},
      {"upper", &Renderer::pure<filter_upper>},
      {"title", &Renderer::pure<filter_title>},
      {"capitalize", &Renderer::pure<filter_capitalize>},
      {"replace", &Renderer::pure<filter_replace>},
      {"join", &Renderer::filter_join},
      {"first", &Renderer::filter_first},
      {"last", &Renderer::filter_last},
      {"list", &Renderer::filter_list},
      {"items", &Renderer::pure<filter_items>},
      {"reverse", &Renderer::filter_reverse},
      {"abs", &Renderer::pure<filter_abs>},
      {"selectattr", &Renderer::filter_selectattr},
      {"rejectattr", &Renderer::filter_rejectattr},
      {"map", &Renderer::filter_map},
  };
  for (const auto& [n, fn] : kFilters)
    if (n == name) return fn;
  return nullptr;
}

// The input and all arguments are evaluated before the filter is looked up (an unknown filter's arguments still
// report their own errors first). A filter's sft::Error gets the filter's line.
Value Renderer::filter(const Expr& e) {
  if (e.name == "default" || e.name == "d") return filter_default(e);
  const Value v = eval(*e.args[0]);
  const List a = eval_args(e);
  const KwArgs kw = eval_kwargs(e);
  const FilterFn fn = find_filter(e.name);
  if (!fn) fail(e.line, "unsupported filter '" + e.name + "'");
  try {
    return (this->*fn)(FilterCall{e, v, a, kw});
  } catch (const Error& err) {
    fail(e.line, std::string(err.what()));
  }
}

// default(value, default_value='', boolean=False): the fallback replaces an undefined input, or with boolean any
// falsy one. Only its own arguments are evaluated (other keywords are ignored unevaluated), and errors in them are
// the argument's own (not re-prefixed as the filter's).
Value Renderer::filter_default(const Expr& e) {
  const Value v = eval(*e.args[0]);
  const Value def = e.args.size() > 1 ? eval(*e.args[1]) : Value(std::string());
  const Value* boolean = nullptr;
  Value bval;
  if (e.args.size() > 2) {
    bval = eval(*e.args[2]);
    boolean = &bval;
  }
  for (const auto& [k, x] : e.kwargs)
    if (k == "boolean") {
      bval = eval(*x);
      boolean = &bval;
    }
  const bool use_default = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
  return use_default ? def : v;
}

// join(d='', attribute=None): the items' (or their attribute's) text, separated by d.
Value Renderer::filter_join(const FilterCall& c) {
  const Value* sep = arg(c.a, c.kw, 0, "d");
  const Value* attribute = arg(c.a, c.kw, 1, "attribute");
  std::string out;
  const List items = iterate(c.v, c.e.line);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i && sep) out += sep->str();
    out += attribute ? get_item(items[i], *attribute, c.e.line).str() : items[i].str();
    check_value_room(out.size());
  }
  return Value(std::move(out));
}

Value Renderer::filter_first(const FilterCall& c) {
  const List items = iterate(c.v, c.e.line);
  return items.empty() ? Value() : items.front();
}

Value Renderer::filter_last(const FilterCall& c) {
  const List items = iterate(c.v, c.e.line);
  return items.empty() ? Value() : items.back();
}

Value Renderer::filter_list(const FilterCall& c) { return Value(iterate(c.v, c.e.line)); }

// A string reversed by code points, anything else iterated and reversed into a list.
Value Renderer::filter_reverse(const FilterCall& c) {
  if (c.v.is_string()) {
    auto cps = py::code_points(c.v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(py::from_code_points(cps, 0, cps.size()));
  }
  List items = iterate(c.v, c.e.line);
  std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

// selectattr / rejectattr(attr[, test, test args...]): the items whose attribute is truthy, or passes the named test
// (run through test() as if written `attr is test(args)`), kept (select) or dropped (reject).
Value Renderer::select_by_attr(const FilterCall& c, bool select) {
  const std::string& f = c.e.name;
  SFT_CHECK(!c.a.empty() && c.a[0].is_string(), f, " needs an attribute name");
  List out;
  for (const auto& item : iterate(c.v, c.e.line)) {
    const Value attr = get_item(item, c.a[0], c.e.line);
    bool r = attr.truthy();
    if (c.a.size() > 1) {
      const std::string tname = need_str(c.a[1], f.c_str());
      Expr te;
      te.kind = Expr::Kind::Test;
      te.name = tname;
      te.line = c.e.line;
      auto lit = std::make_unique<Expr>();
      lit->literal = attr;
      te.args.push_back(std::move(lit));
      for (size_t k = 2; k < c.a.size(); ++k) {
        auto x = std::make_unique<Expr>();
        x->literal = c.a[k];
        te.args.push_back(std::move(x));
      }
      r = test(te);
    }
    if (r == select) out.push_back(item);
  }
  return Value(std::move(out));
}

// map(attribute=name[, default=x]) only: each item's attribute (the default where it is undefined).
Value Renderer::filter_map(const FilterCall& c) {
  const Value* attribute = kwarg(c.kw, "attribute");
  SFT_CHECK(attribute && c.a.empty(), "only map(attribute=...) is supported");
  List out;
  for (const auto& item : iterate(c.v, c.e.line)) {
    Value x = get_item(item, *attribute, c.e.line);
    if (x.is_undefined()) {
      if (const Value* d = kwarg(c.kw, "default")) x = *d;
    }
    out.push_back(std::move(x));
  }
  return Value(std::move(out));
}

bool Renderer::test(const Expr& e) {
  const std::string& t = e.name;
  const Value v = eval(*e.args[0]);
  const List a = eval_args(e);
  auto need1 = [&]() -> const Value& {
    if (a.size() != 1) fail(e.line, "test '" + t + "' takes one argument");
    return a[0];
  };
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number() || v.is_bool();
  if (t == "integer") return v.is_int();
  if (t == "float") return v.is_float();
  if (t == "boolean") return v.is_bool();
  if (t == "true") return v.is_bool() && v.as_bool();
  if (t == "false") return v.is_bool() && !v.as_bool();
  if (t == "mapping") return v.is_dict();
  if (t == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (t == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (t == "callable") return v.is_function();
  if (t == "even" || t == "odd") {
    if (!v.is_int()) fail(e.line, "test '" + t + "' needs an integer");
    return (v.as_int() % 2 == 0) == (t == "even");
  }
  if (t == "divisibleby") {
    const Value& d = need1();
    if (!v.is_int() || !d.is_int() || d.as_int() == 0) fail(e.line, "divisibleby needs non-zero integers");
    return d.as_int() == -1 || v.as_int() % d.as_int() == 0;  // INT64_MIN % -1 would trap
  }
  if (t == "eq" || t == "equalto" || t == "==") return values_equal(v, need1());
  if (t == "ne" || t == "!=") return !values_equal(v, need1());
  if (t == "lt" || t == "lessthan" || t == "<") return compare("<", v, need1(), e.line);
  if (t == "le" || t == "<=") return compare("<=", v, need1(), e.line);
  if (t == "gt" || t == "greaterthan" || t == ">") return compare(">", v, need1(), e.line);
  if (t == "ge" || t == ">=") return compare(">=", v, need1(), e.line);
  if (t == "in") return contains(need1(), v, e.line);
  if (t == "sameas") {
    const Value& o = need1();
    if (v.is_none() || o.is_none()) return v.is_none() && o.is_none();
    if (v.is_bool() || o.is_bool()) return v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool();
    if (v.is_undefined() || o.is_undefined()) return false;
    if (v.storage().index() != o.storage().index()) return false;
    if (v.is_list()) return &v.as_list() == &o.as_list();
    if (v.is_dict()) return &v.as_dict() == &o.as_dict();
    return values_equal(v, o);
  }
  if (t == "lower" || t == "upper") {
    if (!v.is_string()) return false;
    return t == "lower" ? py::lower(v.as_string()) == v.as_string() : py::upper(v.as_string()) == v.as_string();
  }
  fail(e.line, "unsupported test '" + t + "'");
}

}  // namespace

Template::Template() : impl_(std::make_unique<Impl>()) {}
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

Template Template::parse(const std::string& source, const std::string& name) {
  Template t;
  t.impl_->name = name;
  t.impl_->nodes = parse_template(source, name);
  t.impl_->has_generation = contains_generation(t.impl_->nodes);
  return t;
}

bool Template::uses_generation_blocks() const { return impl_->has_generation; }

RenderResult Template::render(const Dict& context, const RenderLimits& limits) const {
  ValueBudget budget(limits.max_value_bytes);  // every value made from here to the return counts
  Renderer r(*impl_, context, limits);
  return r.run();
}

}  // namespace sft::jinja
