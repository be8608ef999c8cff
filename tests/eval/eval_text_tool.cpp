// Driver for test_python_semantics.py: applies our Python-compatible string functions and random.Random.sample port
// to inputs read as JSON from stdin, so the test can compare them with CPython itself.
// stdin:  {"strings": [str...], "samples": [[seed, n, k], ...], "bits": [[seed, count], ...]}
// stdout: {"strip": [...], "rstrip": [...], "capitalize": [...], "len": [...], "hellaswag": [...],
//          "samples": [[idx...]...], "bits": [[uint32...]...]}
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "eval/py_random.h"
#include "eval/py_text.h"

int main() {
  using nlohmann::json;
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json req = json::parse(in);
  json out;
  for (const auto& s : req["strings"]) {
    std::string t = s.get<std::string>();
    out["strip"].push_back(sft::eval::py_strip(t));
    out["rstrip"].push_back(sft::eval::py_rstrip(t));
    out["capitalize"].push_back(sft::eval::py_capitalize(t));
    out["len"].push_back(sft::eval::py_len(t));
    out["hellaswag"].push_back(sft::eval::hellaswag_preprocess(t));
  }
  for (const auto& s : req["samples"]) {
    sft::eval::PyRandom rnd(s[0].get<uint64_t>());
    // Two consecutive calls on one generator, as lm-eval's sampler makes one call per document.
    json both = json::array();
    for (int rep = 0; rep < 2; ++rep) both.push_back(rnd.sample_indices(s[1].get<int64_t>(), s[2].get<int64_t>()));
    out["samples"].push_back(both);
  }
  for (const auto& b : req["bits"]) {
    sft::eval::PyRandom rnd(b[0].get<uint64_t>());
    json v = json::array();
    for (int i = 0; i < b[1].get<int>(); ++i) v.push_back(rnd.genrand_uint32());
    out["bits"].push_back(v);
  }
  std::cout << out.dump() << "\n";
  return 0;
}
