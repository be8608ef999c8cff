// Errors: every layer throws sft::Error with a one-line message that names the file, row or tensor and what was
// expected. Only cli/ catches it, prints "sft: error: <message>" and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace sft {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string msg) : std::runtime_error(std::move(msg)) {}
};

// Throws sft::Error when cond is false; the message is built only on failure.
#define SFT_CHECK(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) throw ::sft::Error(::sft::detail::concat(__VA_ARGS__));       \
  } while (0)

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::string out;
  auto append = [&out](const auto& a) {
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(a)>>) out += std::to_string(a);
    else out += a;
  };
  (append(args), ...);
  return out;
}
}  // namespace detail

}  // namespace sft
