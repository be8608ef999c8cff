// Python str semantics on UTF-8 text, as chat templates call them (len, indexing and slicing by code point,
// strip/split with Python's Unicode whitespace, ...). Internal to src/template.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sft::jinja::py {

std::vector<uint32_t> code_points(std::string_view s);  // invalid bytes map to themselves (U+0080..U+00FF range)
std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end);
size_t length(std::string_view s);  // len(): code points
bool is_space(uint32_t cp);         // str.isspace()

// Linear-time substring search (Knuth-Morris-Pratt; Python's str.find is linear too). std::string_view::find costs
// O(n*m) on inputs like ('a' * 10**7).count('a' * 10**6 ~ 'b'), which a hostile template builds from a few bytes.
class Finder {
 public:
  explicit Finder(std::string_view pattern);
  // Byte offset of the first occurrence at or after `from`, or npos. An empty pattern matches at `from`.
  size_t find(std::string_view s, size_t from = 0) const;

 private:
  std::string_view pat_;
  std::vector<uint32_t> fail_;  // KMP failure function (longest proper border of pat_[0..i])
};

enum class Side { Both, Left, Right };
// str.strip(chars) / lstrip / rstrip; chars == nullptr strips whitespace.
std::string strip(std::string_view s, const std::string* chars, Side side);
// str.split(sep, maxsplit); sep == nullptr splits on runs of whitespace and drops empty parts. Each part is handed
// to `part` as it is found (the caller's values are bounded by its memory budget: no list of all parts first).
void split(std::string_view s, const std::string* sep, int64_t maxsplit,
           const std::function<void(std::string)>& part);
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
int64_t count(std::string_view s, std::string_view sub);
// ASCII-only case mappings (upper/lower/title/capitalize); throw sft::Error for non-ASCII letters rather than map
// them differently from Python.
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);

}  // namespace sft::jinja::py
