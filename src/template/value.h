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

#include "util/error.h"

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

// Memory and nesting bounds of the values a template builds (the output has its own cap, RenderLimits).
//
// While a ValueBudget is active on a thread (Template::render makes one), every Value created on that thread counts
// the memory it holds: sizeof(Value) plus a string's heap bytes plus, for a dict, its keys. A Value counts from its
// construction (copies included: a copied string is copied memory) to its destruction, so the budget's `used` is the
// live total of the render's values, whatever made them (literals, `~`, `*`, filters, loop variables, namespace
// attributes). Creating a Value that would take `used` past the limit throws ValueLimitError, which the renderer
// turns into an error naming the template line (as it does for a value nested deeper than kMaxValueDepth). Operations that build a large string before it becomes a Value
// (`*`, `~`, join, replace, tojson, str() of a container) check the room first with check_value_room().
// Values made without an active budget (the messages, the special tokens) are not counted.
// A value over the memory budget or nested too deeply: the renderer adds the template line.
struct ValueLimitError : Error {
  using Error::Error;
};
class ValueBudget {
 public:
  explicit ValueBudget(size_t limit_bytes);  // activates on this thread (restores the previous one on destruction)
  ~ValueBudget();
  ValueBudget(const ValueBudget&) = delete;
  ValueBudget& operator=(const ValueBudget&) = delete;
  size_t used() const { return used_; }
  size_t limit() const { return limit_; }
  size_t peak() const { return peak_; }

 private:
  friend class Value;
  friend void check_value_room(size_t);
  friend void release_value_bytes(size_t) noexcept;
  friend size_t count_value_bytes(size_t);
  size_t limit_, used_ = 0, peak_ = 0;
  ValueBudget* previous_;
};
// Throws ValueLimitError when `bytes` more than the active budget's live total would pass its limit (no budget
// active: never). Call before building a large string that is not a Value yet.
void check_value_room(size_t bytes);
// Counts `bytes` against the active budget (throws as check_value_room) and returns what was counted (0 when no
// budget is active); release_value_bytes gives it back.
size_t count_value_bytes(size_t bytes);
void release_value_bytes(size_t bytes) noexcept;
// Lists, dicts and namespaces nest at most this deep (Python's repr and json.dumps recurse; so do ==, < and tojson
// here): a deeper value is an error when it is built, so no walker can exhaust the stack.
inline constexpr int kMaxValueDepth = 256;

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<List>,
                               std::shared_ptr<Dict>, std::shared_ptr<Namespace>, std::shared_ptr<Function>>;
  Value() : v_(Undefined{}) { account(); }
  Value(None) : v_(None{}) { account(); }
  Value(bool b) : v_(b) { account(); }
  Value(int i) : v_(static_cast<int64_t>(i)) { account(); }
  Value(int64_t i) : v_(i) { account(); }
  Value(double d) : v_(d) { account(); }
  Value(std::string s) : v_(std::move(s)) { account(); }
  Value(const char* s) : v_(std::string(s)) { account(); }
  Value(List l);  // throws sft::Error when nested deeper than kMaxValueDepth
  Value(Dict d);
  Value(std::shared_ptr<Namespace> n) : v_(std::move(n)), depth_(1), has_namespace_(true) { account(); }
  Value(std::shared_ptr<Function> f) : v_(std::move(f)) { account(); }
  Value(const Value& o) : v_(o.v_), depth_(o.depth_), has_namespace_(o.has_namespace_) { account(); }
  Value(Value&& o) noexcept
      : v_(std::move(o.v_)), counted_(o.counted_), depth_(o.depth_), has_namespace_(o.has_namespace_) {
    o.counted_ = 0;
  }
  Value& operator=(const Value& o) {
    if (this != &o) {
      Value copy(o);  // may throw ValueLimitError: *this is untouched then
      *this = std::move(copy);
    }
    return *this;
  }
  Value& operator=(Value&& o) noexcept {
    if (this != &o) {
      release_value_bytes(counted_);
      v_ = std::move(o.v_);
      counted_ = o.counted_;
      depth_ = o.depth_;
      has_namespace_ = o.has_namespace_;
      o.counted_ = 0;
    }
    return *this;
  }
  ~Value() { release_value_bytes(counted_); }

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
  int depth() const { return depth_; }                     // 0 for scalars, 1 + the deepest element for containers
  bool holds_namespace() const { return has_namespace_; }  // is, or contains, a namespace

  const char* type_name() const;  // Python's type name: "str", "int", "list", "dict", "NoneType", ...
  bool truthy() const;            // Python bool(): empty str/list/dict, 0, None, undefined are false
  std::string str() const;        // Python str() as Jinja prints it ("None", "True", "1.5", "['a', 1]")
  std::string repr() const;       // Python repr()
  // json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys) with Python's default separators
  // (", " and ": "; "," at line ends when indented). indent < 0 = no indent (None), 0 = newlines only.
  std::string to_json(int64_t indent = -1, bool sort_keys = false) const;

 private:
  void account();  // counts this value's memory against the active ValueBudget

  Storage v_;
  size_t counted_ = 0;  // bytes this Value counted against the budget that was active when it was made
  uint16_t depth_ = 0;
  bool has_namespace_ = false;
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
