#include "template/jinja_arith.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "template/py_string.h"
#include "util/error.h"

namespace sft::jinja::arith {
namespace {

bool is_num(const Value& v) { return v.is_number() || v.is_bool(); }
int64_t as_i(const Value& v) { return v.is_bool() ? int64_t{v.as_bool()} : v.as_int(); }

[[noreturn]] void overflow(int64_t a, const std::string& op, int64_t b) {
  throw Error("integer overflow: " + std::to_string(a) + " " + op + " " + std::to_string(b) +
              " does not fit in 64 bits (Python would compute a big integer; sft's template engine refuses rather "
              "than wrap)");
}

[[noreturn]] void type_error(const std::string& op, const Value& a, const Value& b) {
  throw Error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

int64_t int_pow(int64_t a, int64_t e) {  // e >= 0, exact or an overflow error
  int64_t result = 1, base = a;
  for (int64_t k = e; k > 0;) {
    if ((k & 1) && __builtin_mul_overflow(result, base, &result)) overflow(a, "**", e);
    k >>= 1;
    // A base whose square overflows while exponent bits remain makes the result overflow too (|a^e| >= base^2).
    if (k > 0 && __builtin_mul_overflow(base, base, &base)) overflow(a, "**", e);
  }
  return result;
}

double float_pow(double x, double y) {
  if (y == 0) return 1.0;  // Python: anything ** 0 is 1.0, nan included
  if (x == 0 && y < 0) throw Error("0.0 cannot be raised to a negative power");
  if (x < 0 && std::isfinite(x) && std::isfinite(y) && y != std::floor(y))
    throw Error("a negative number raised to a fractional power is complex in Python; not supported");
  const double r = std::pow(x, y);
  if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) throw Error("float ** overflows (Numerical result out of range)");
  return r;
}

// Python's float divmod (Objects/floatobject.c): the remainder takes the divisor's sign, the quotient is floored.
void float_divmod(double x, double y, double& div, double& mod) {
  mod = std::fmod(x, y);
  div = (x - mod) / y;
  if (mod != 0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  if (div != 0) {
    const double floordiv = std::floor(div);
    div = div - floordiv > 0.5 ? floordiv + 1.0 : floordiv;
  } else {
    div = std::copysign(0.0, x / y);
  }
}

Value repeat(const Value& seq, int64_t times) {
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size() * sizeof(Value);
  // Nothing to repeat: done at once (`'' * 10**18` must not loop 10**18 times).
  if (times <= 0 || unit == 0) return seq.is_string() ? Value(std::string()) : Value(List{});
  size_t total = 0;
  if (__builtin_mul_overflow(unit, static_cast<uint64_t>(times), &total)) total = SIZE_MAX;
  check_value_room(total);
  if (seq.is_string()) {
    std::string out;
    out.reserve(total);
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  List out;
  out.reserve(seq.as_list().size() * static_cast<size_t>(times));
  for (int64_t i = 0; i < times; ++i)
    for (const auto& x : seq.as_list()) out.push_back(x);
  return Value(std::move(out));
}

Value concat_str(const Value& a, const Value& b) {
  const std::string sa = a.str();
  const std::string sb = b.str();
  check_value_room(sa.size() + sb.size());
  std::string out;
  out.reserve(sa.size() + sb.size());
  out += sa;
  out += sb;
  return Value(std::move(out));
}

Value add(const Value& a, const Value& b) {
  if (is_num(a) && is_num(b)) {
    if (a.is_float() || b.is_float()) return Value(a.as_number() + b.as_number());
    int64_t r = 0;
    if (__builtin_add_overflow(as_i(a), as_i(b), &r)) overflow(as_i(a), "+", as_i(b));
    return Value(r);
  }
  if (a.is_string() && b.is_string()) return concat_str(a, b);
  if (a.is_list() && b.is_list()) {
    check_value_room((a.as_list().size() + b.as_list().size()) * sizeof(Value));
    List l = a.as_list();
    for (const auto& x : b.as_list()) l.push_back(x);
    return Value(std::move(l));
  }
  type_error("+", a, b);
}

Value floor_div_or_mod(const std::string& op, const Value& a, const Value& b) {
  if (!is_num(a) || !is_num(b)) {
    if (op == "%" && a.is_string()) throw Error("printf-style string formatting ('%') is not supported");
    type_error(op, a, b);
  }
  if (a.is_float() || b.is_float()) {
    const double x = a.as_number(), y = b.as_number();
    if (y == 0) throw Error(op == "//" ? "float floor division by zero" : "float modulo by zero");
    double div = 0, mod = 0;
    float_divmod(x, y, div, mod);
    return Value(op == "//" ? div : mod);
  }
  const int64_t x = as_i(a), y = as_i(b);
  if (y == 0) throw Error("integer division or modulo by zero");
  if (y == -1) {  // INT64_MIN / -1 traps on x86; the remainder is always 0
    if (op == "%") return Value(int64_t{0});
    if (x == std::numeric_limits<int64_t>::min()) overflow(x, "//", y);
    return Value(-x);
  }
  int64_t q = x / y, r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) {
    --q;
    r += y;
  }
  return op == "//" ? Value(q) : Value(r);
}

}  // namespace

Value binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return concat_str(a, b);
  if (op == "+") return add(a, b);
  const bool num = is_num(a) && is_num(b);
  const bool ints = num && !a.is_float() && !b.is_float();
  if (op == "-") {
    if (!num) type_error(op, a, b);
    if (!ints) return Value(a.as_number() - b.as_number());
    int64_t r = 0;
    if (__builtin_sub_overflow(as_i(a), as_i(b), &r)) overflow(as_i(a), "-", as_i(b));
    return Value(r);
  }
  if (op == "*") {
    if (ints) {
      int64_t r = 0;
      if (__builtin_mul_overflow(as_i(a), as_i(b), &r)) overflow(as_i(a), "*", as_i(b));
      return Value(r);
    }
    if (num) return Value(a.as_number() * b.as_number());
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, as_i(b));
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, as_i(a));
    type_error(op, a, b);
  }
  if (op == "/") {
    if (!num) type_error(op, a, b);
    if (b.as_number() == 0) throw Error("division by zero");
    return Value(a.as_number() / b.as_number());
  }
  if (op == "//" || op == "%") return floor_div_or_mod(op, a, b);
  if (op == "**") {
    if (!num) type_error(op, a, b);
    if (ints && as_i(b) >= 0) return Value(int_pow(as_i(a), as_i(b)));
    return Value(float_pow(a.as_number(), b.as_number()));
  }
  throw Error("unknown operator " + op);
}

Value negate(const Value& v) {
  if (v.is_float()) return Value(-v.as_float());
  if (v.is_int() || v.is_bool()) {
    int64_t r = 0;
    if (__builtin_sub_overflow(int64_t{0}, as_i(v), &r))
      throw Error("integer overflow: -(" + std::to_string(as_i(v)) + ") does not fit in 64 bits (Python would compute "
                  "a big integer; sft's template engine refuses rather than wrap)");
    return Value(r);
  }
  throw Error(std::string("bad operand type for unary -: '") + v.type_name() + "'");
}

Value absolute(const Value& v) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) return as_i(v) < 0 ? negate(v) : Value(as_i(v));
  throw Error(std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

std::optional<int64_t> float_to_int(double d) {
  if (std::isnan(d)) return std::nullopt;
  // [-2^63, 2^63): exactly the doubles whose truncation fits in int64.
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    throw Error("cannot convert float " + python_float_repr(d) + " to a 64-bit integer (" +
                (std::isinf(d) ? std::string("Python: OverflowError") : std::string("Python would give a big integer")) +
                ")");
  return static_cast<int64_t>(d);
}

namespace {
// The body of a Python numeric literal without whitespace and sign: digit groups joined by single underscores.
// Returns the digits without underscores, or nullopt.
std::optional<std::string> digit_run(std::string_view s, size_t& i) {
  std::string out;
  while (i < s.size()) {
    if (s[i] >= '0' && s[i] <= '9') {
      out += s[i++];
    } else if (s[i] == '_' && !out.empty() && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
      ++i;
    } else {
      break;
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string_view strip_ws(std::string_view s, std::string& keep) {
  keep = py::strip(s, nullptr, py::Side::Both);
  return keep;
}
}  // namespace

std::optional<int64_t> parse_int(std::string_view raw) {
  std::string keep;
  const std::string_view s = strip_ws(raw, keep);
  size_t i = 0;
  const bool neg = i < s.size() && s[i] == '-';
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  const auto digits = digit_run(s, i);
  if (!digits || i != s.size()) return std::nullopt;
  uint64_t mag = 0;
  for (const char c : *digits) {
    if (__builtin_mul_overflow(mag, uint64_t{10}, &mag) || __builtin_add_overflow(mag, uint64_t(c - '0'), &mag)) {
      mag = UINT64_MAX;
      break;
    }
  }
  const uint64_t limit = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (mag > limit)
    throw Error("integer " + std::string(s) + " does not fit in 64 bits (Python would give a big integer)");
  return neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
}

std::optional<double> parse_float(std::string_view raw) {
  std::string keep;
  const std::string_view s = strip_ws(raw, keep);
  size_t i = 0;
  std::string text;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) text += s[i++];
  std::string word(s.substr(i));
  for (auto& c : word) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (word == "inf" || word == "infinity") return text == "-" ? -HUGE_VAL : HUGE_VAL;
  if (word == "nan") return std::nan("");
  const auto int_part = digit_run(s, i);
  if (int_part) text += *int_part;
  bool any_digits = int_part.has_value();
  if (i < s.size() && s[i] == '.') {
    ++i;
    text += '.';
    if (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      text += *digit_run(s, i);
      any_digits = true;
    }
  }
  if (!any_digits) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    text += 'e';
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) text += s[i++];
    const auto exp = digit_run(s, i);
    if (!exp) return std::nullopt;
    text += *exp;
  }
  if (i != s.size()) return std::nullopt;
  // strtod rounds correctly and, like Python, gives +-HUGE_VAL (inf) beyond double's range and 0 below it. The text
  // is plain ASCII digits with '.', which every locale sft runs in (it never calls setlocale) reads the same way.
  return std::strtod(text.c_str(), nullptr);
}

}  // namespace sft::jinja::arith
