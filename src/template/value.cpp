#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "util/error.h"
#include "util/json_text.h"

namespace sft::jinja {

namespace {
thread_local ValueBudget* active_budget = nullptr;

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

[[noreturn]] void budget_exceeded(const ValueBudget& b) {
  throw ValueLimitError("the values the template builds exceed " + mib(b.limit()) +
                            " (strings, lists and dicts alive at once; sft bounds a chat template's memory)");
}

// Heap bytes a string holds beyond its object (none while it fits the small-string buffer).
size_t heap_bytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; }

// A dict's keys live with the shared dict, so they are counted when it is made and given back when its last owner
// lets go (the deleter), not by whichever Value first held it.
struct CountedDictDeleter {
  size_t counted;
  void operator()(Dict* d) const noexcept {
    delete d;
    release_value_bytes(counted);
  }
};
}  // namespace

ValueBudget::ValueBudget(size_t limit_bytes) : limit_(limit_bytes), previous_(active_budget) { active_budget = this; }
ValueBudget::~ValueBudget() { active_budget = previous_; }

void check_value_room(size_t bytes) {
  ValueBudget* b = active_budget;
  if (b && (bytes > b->limit_ || b->used_ > b->limit_ - bytes)) budget_exceeded(*b);
}

size_t count_value_bytes(size_t bytes) {
  ValueBudget* b = active_budget;
  if (!b) return 0;
  if (bytes > b->limit_ || b->used_ > b->limit_ - bytes) budget_exceeded(*b);
  b->used_ += bytes;
  b->peak_ = std::max(b->peak_, b->used_);
  return bytes;
}

void release_value_bytes(size_t bytes) noexcept {
  ValueBudget* b = active_budget;
  if (b && bytes) b->used_ -= std::min(bytes, b->used_);  // a value counted by an earlier budget: never below 0
}

void Value::account() {
  if (!active_budget) return;
  const auto* s = std::get_if<std::string>(&v_);
  counted_ = count_value_bytes(sizeof(Value) + (s ? heap_bytes(*s) : 0));
}

Value::Value(List l) {
  int depth = 0;
  bool ns = false;
  for (const auto& x : l) {
    depth = std::max(depth, int{x.depth_});
    ns = ns || x.has_namespace_;
  }
  if (depth >= kMaxValueDepth) throw ValueLimitError("a list nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  v_ = std::make_shared<List>(std::move(l));
  depth_ = static_cast<uint16_t>(depth + 1);
  has_namespace_ = ns;
  account();
}

Value::Value(Dict d) {
  int depth = 0;
  bool ns = false;
  size_t key_bytes = 0;
  for (const auto& [k, x] : d.items) {
    depth = std::max(depth, int{x.depth_});
    ns = ns || x.has_namespace_;
    key_bytes += sizeof(std::string) + heap_bytes(k);
  }
  if (depth >= kMaxValueDepth) throw ValueLimitError("a dict nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  const size_t counted = count_value_bytes(key_bytes);
  v_ = std::shared_ptr<Dict>(new Dict(std::move(d)), CountedDictDeleter{counted});
  depth_ = static_cast<uint16_t>(depth + 1);
  has_namespace_ = ns;
  account();
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}
Value* Dict::find(const std::string& key) {
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}
void Dict::set(const std::string& key, Value v) {
  if (Value* slot = find(key)) {
    *slot = std::move(v);
    return;
  }
  items.emplace_back(key, std::move(v));
}

const char* Value::type_name() const {
  switch (v_.index()) {
    case 0: return "Undefined";
    case 1: return "NoneType";
    case 2: return "bool";
    case 3: return "int";
    case 4: return "float";
    case 5: return "str";
    case 6: return "list";
    case 7: return "dict";
    case 8: return "Namespace";
    default: return "function";
  }
}

bool Value::truthy() const {
  switch (v_.index()) {
    case 0:
    case 1: return false;
    case 2: return as_bool();
    case 3: return as_int() != 0;
    case 4: return as_float() != 0.0;
    case 5: return !as_string().empty();
    case 6: return !as_list().empty();
    case 7: return !as_dict().items.empty();
    default: return true;
  }
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's repr layout: scientific when exp < -4 or exp >= 16.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // e.g. "-1.2345e+02"
  const size_t epos = sci.find('e');
  const int exp = std::stoi(sci.substr(epos + 1));
  std::string mant = sci.substr(0, epos);
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + eb;
  }
  if (exp < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    return out;
  }
  const size_t int_len = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_len) {
    out += digits + std::string(int_len - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, int_len) + "." + digits.substr(int_len);
  }
  return out;
}

namespace {

// Upper bound of the quoted text of s (repr or JSON: an escaped byte takes at most 6), checked against the budget
// before the text is built.
void check_quoted_room(const std::string& s, size_t already) {
  size_t escaped = 0;
  for (const unsigned char c : s) escaped += c < 0x20 || c == '"' || c == '\\' || c == '\'' || c == 0x7f;
  check_value_room(already + s.size() + 5 * escaped + 2);
}

std::string python_str_repr(const std::string& s) {
  check_quoted_room(s, 0);
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + q;
}

// One level of indentation text (json.dumps: "\n" + indent * depth spaces), its size checked against the budget first
// (tojson(indent=1000000000) would otherwise build gigabytes before anything could object).
std::string json_newline(int64_t indent, int depth) {
  if (indent < 0) return "";
  const auto n = static_cast<size_t>(indent) * static_cast<size_t>(depth);  // indent <= 2^31, depth <= 256
  check_value_room(n);
  std::string out(n + 1, ' ');
  out[0] = '\n';
  return out;
}

void json_dump(const Value& v, int64_t indent, bool sort_keys, int depth, std::string& out) {
  SFT_CHECK(depth < kMaxValueDepth, "chat template: tojson nesting deeper than ", kMaxValueDepth);
  check_value_room(out.size());
  const char* item_sep = indent >= 0 ? "," : ", ";
  if (v.is_undefined() || v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    const double d = v.as_float();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : python_float_repr(d);
  } else if (v.is_string()) {
    check_quoted_room(v.as_string(), out.size());
    json_text::append_quoted(out, v.as_string());
  } else if (v.is_list()) {
    const auto& l = v.as_list();
    if (l.empty()) {
      out += "[]";
      return;
    }
    const std::string nl = json_newline(indent, depth + 1), nl_end = json_newline(indent, depth);
    out += "[";
    for (size_t i = 0; i < l.size(); ++i) {
      out += i ? item_sep : "";
      out += nl;
      json_dump(l[i], indent, sort_keys, depth + 1, out);
    }
    out += nl_end + "]";
  } else if (v.is_dict() || v.is_namespace()) {
    const Dict& d = v.is_dict() ? v.as_dict() : v.as_namespace().attrs;
    if (d.items.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& kv : d.items) items.push_back(&kv);
    if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
    const std::string nl = json_newline(indent, depth + 1), nl_end = json_newline(indent, depth);
    out += "{";
    for (size_t i = 0; i < items.size(); ++i) {
      out += i ? item_sep : "";
      out += nl;
      check_quoted_room(items[i]->first, out.size());
      json_text::append_quoted(out, items[i]->first);
      out += ": ";
      json_dump(items[i]->second, indent, sort_keys, depth + 1, out);
    }
    out += nl_end + "}";
  } else {
    throw Error("chat template: tojson cannot serialise a " + std::string(v.type_name()));
  }
}

}  // namespace

std::string Value::str() const {
  switch (v_.index()) {
    case 0: return "";  // Jinja's default Undefined prints as nothing
    case 5: return as_string();
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (v_.index()) {
    case 0: return "";
    case 1: return "None";
    case 2: return as_bool() ? "True" : "False";
    case 3: return std::to_string(as_int());
    case 4: return python_float_repr(as_float());
    case 5: return python_str_repr(as_string());
    // Containers: the text grows with every element, so the budget is checked as it grows (a list of a million
    // references to one long string prints as a million copies of it).
    case 6: {
      std::string out = "[";
      const auto& l = as_list();
      for (size_t i = 0; i < l.size(); ++i) {
        out += (i ? ", " : "") + l[i].repr();
        check_value_room(out.size());
      }
      return out + "]";
    }
    case 7: {
      std::string out = "{";
      const auto& d = as_dict();
      for (size_t i = 0; i < d.items.size(); ++i) {
        out += (i ? ", " : "") + python_str_repr(d.items[i].first) + ": " + d.items[i].second.repr();
        check_value_room(out.size());
      }
      return out + "}";
    }
    case 8: return "<Namespace>";
    default: return "<function " + as_function().name + ">";
  }
}

std::string Value::to_json(int64_t indent, bool sort_keys) const {
  SFT_CHECK(indent <= (int64_t{1} << 31), "chat template: tojson indent ", indent, " is too large");
  std::string out;
  json_dump(*this, indent, sort_keys, 0, out);
  return out;
}

bool values_equal(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) return a.as_number() == b.as_number();
  if (a.storage().index() != b.storage().index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.as_string() == b.as_string();
  if (a.is_list()) {
    const auto &x = a.as_list(), &y = b.as_list();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!values_equal(x[i], y[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    const auto &x = a.as_dict(), &y = b.as_dict();
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, v] : x.items) {
      const Value* o = y.find(k);
      if (!o || !values_equal(v, *o)) return false;
    }
    return true;
  }
  if (a.is_namespace()) return &a.as_namespace() == &b.as_namespace();
  return &a.as_function() == &b.as_function();
}

bool value_less(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) return a.as_number() < b.as_number();
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 byte order = code point order
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (value_less(x[i], y[i])) return true;
      if (value_less(y[i], x[i])) return false;
    }
    return x.size() < y.size();
  }
  throw Error(std::string("chat template: '<' not supported between instances of '") + a.type_name() + "' and '" +
              b.type_name() + "'");
}

}  // namespace sft::jinja
