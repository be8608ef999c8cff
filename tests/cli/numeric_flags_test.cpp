// Numeric flag parsing of eval / generate / chat (src/cli/numeric_flags.cpp). cli/ is an executable, not a library, so
// the one source file under test is compiled into this test directly. The commands themselves: the flags/ cases of
// tests/robustness/run_robustness.py.
#include "cli/numeric_flags.cpp"  // NOLINT(bugprone-suspicious-include)

#include <gtest/gtest.h>

#include <functional>

namespace sft::cli {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(NumericFlags, IntegersInRangeOnly) {
  EXPECT_EQ(parse_int_flag("--n", "7", 2, 9, "x"), 7);
  EXPECT_EQ(parse_int_flag("--n", "+2", 2, 9, "x"), 2);
  EXPECT_EQ(parse_int_flag("--n", "-3", -5, 9, "x"), -3);
  EXPECT_EQ(parse_int_flag("--n", "9223372036854775807", 0, INT64_MAX, "x"), INT64_MAX);
  for (const char* bad : {"", "1", "10", "-", "+", " 5", "5 ", "5x", "1e3", "0x5", "5.0", "9223372036854775808",
                          "-9223372036854775809", "99999999999999999999"})
    EXPECT_EQ(error_of([&] { parse_int_flag("--max_length", bad, 2, 9, "an integer from 2 to 9"); }),
              std::string("--max_length: expected an integer from 2 to 9, got '") + bad + "'")
        << bad;
  // A long value is cut in the message (one line, bounded).
  EXPECT_EQ(error_of([] { parse_int_flag("--n", std::string(100, 'z'), 0, 1, "x"); }).size(),
            std::string("--n: expected x, got '").size() + 63 + 1);
}

TEST(NumericFlags, Uint64RefusesWhatStrtoullWouldWrap) {
  EXPECT_EQ(parse_uint64_flag("--seed", "18446744073709551615", "x"), UINT64_MAX);
  EXPECT_EQ(parse_uint64_flag("--seed", "0", "x"), 0u);
  for (const char* bad : {"-1", "18446744073709551616", "1.5", "", "seed"})
    EXPECT_NE(error_of([&] { parse_uint64_flag("--seed", bad, "x"); }).find("--seed: expected x"), std::string::npos)
        << bad;
}

TEST(NumericFlags, RealsFiniteAndInRange) {
  EXPECT_EQ(parse_real_flag("--top_p", "0.5", 0, false, 1, false, "x"), 0.5);
  EXPECT_EQ(parse_real_flag("--top_p", "1", 0, false, 1, false, "x"), 1.0);
  EXPECT_EQ(parse_real_flag("--top_p", "0", 0, false, 1, false, "x"), 0.0);
  EXPECT_EQ(parse_real_flag("--t", "1e-3", 0, false, 10, false, "x"), 1e-3);
  for (const char* bad : {"1.5", "-0.1", "nan", "inf", "-inf", "", " 0.5", "0.5x", "1e400", "half"})
    EXPECT_EQ(error_of([&] { parse_real_flag("--top_p", bad, 0, false, 1, false, "a number in [0, 1]"); }),
              std::string("--top_p: expected a number in [0, 1], got '") + bad + "'")
        << bad;
  // Open bounds exclude the bound itself (repetition_penalty > 0).
  EXPECT_NE(error_of([] { parse_real_flag("--repetition_penalty", "0", 0, true, 10, false, "x"); }), "(no error)");
  EXPECT_EQ(parse_real_flag("--repetition_penalty", "0.01", 0, true, 10, false, "x"), 0.01);
  EXPECT_NE(error_of([] { parse_real_flag("--x", "10", 0, false, 10, true, "x"); }), "(no error)");
}

}  // namespace
}  // namespace sft::cli
