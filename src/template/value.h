// Values of the Jinja subset (src/template/jinja.h): what a chat template can see and compute. Semantics follow
// Python/Jinja2 as transformers runs them (truthiness, ==, str(), repr(), json.dumps for `tojson`), because
// rendering must be byte-identical to transformers' apply_chat_template.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace sft::jinja {

class Value;
using List = std::vector<Value>;
// Insertion-ordered mapping (Python dicts keep insertion order; tojson and items() depend on it).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void set(const std::string& key, Value v);
};
struct Namespace;  // `namespace(...)`: the one mutable object (shared by reference, as in Jinja)
struct Function;   // built-in callables (raise_exception, namespace, range, strftime_now) and bound methods

struct Undefined {};
struct None {};

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<List>,
                               std::shared_ptr<Dict>, std::shared_ptr<Namespace>, std::shared_ptr<Function>>;
  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(List l) : v_(std::make_shared<List>(std::move(l))) {}
  Value(Dict d) : v_(std::make_shared<Dict>(std::move(d))) {}
  Value(std::shared_ptr<Namespace> n) : v_(std::move(n)) {}
  Value(std::shared_ptr<Function> f) : v_(std::move(f)) {}

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float(); }  // bool excluded (Jinja's `number` test includes it)
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<List>>(v_); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<Dict>>(v_); }
  bool is_namespace() const { return std::holds_alternative<std::shared_ptr<Namespace>>(v_); }
  bool is_function() const { return std::holds_alternative<std::shared_ptr<Function>>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  double as_number() const { return is_int() ? static_cast<double>(as_int()) : is_bool() ? as_bool() : as_float(); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<List>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(v_); }
  const Storage& storage() const { return v_; }

  const char* type_name() const;  // Python's type name: "str", "int", "list", "dict", "NoneType", ...
  bool truthy() const;            // Python bool(): empty str/list/dict, 0, None, undefined are false
  std::string str() const;        // Python str() as Jinja prints it ("None", "True", "1.5", "['a', 1]")
  std::string repr() const;       // Python repr()
  // json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys) with Python's default separators
  // (", " and ": "; "," at line ends when indented). indent < 0 = no indent.
  std::string to_json(int indent = -1, bool sort_keys = false) const;

 private:
  Storage v_;
};

struct Namespace {
  Dict attrs;
};

using KwArgs = std::vector<std::pair<std::string, Value>>;
struct Function {
  std::string name;  // for error messages
  std::function<Value(const List& args, const KwArgs& kwargs)> call;
};

bool values_equal(const Value& a, const Value& b);  // Python ==
// Python <; throws sft::Error for types Python cannot order (e.g. str < int).
bool value_less(const Value& a, const Value& b);

// Python float repr (shortest round-trip, "1.0", "1e+16", "inf", "nan").
std::string python_float_repr(double d);

}  // namespace sft::jinja
