// Drives train::AdamW on the CPU backend with random parameters and gradients so test_optimizer_parity.py can replay
// the same updates with torch.optim.AdamW + clip_grad_norm_.
// Usage: adamw_tool OUT_DIR STEPS MAX_GRAD_NORM WEIGHT_DECAY
// Writes OUT_DIR/init.safetensors, grads_<k>.safetensors (k = 1..STEPS), final.safetensors, and prints one line per
// step: "step <k> lr <lr> norm <pre-clip norm>".
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "train/adamw.h"

using namespace sft;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: adamw_tool OUT_DIR STEPS MAX_GRAD_NORM WEIGHT_DECAY\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const int steps = std::atoi(argv[2]);
  const double max_norm = std::atof(argv[3]), wd = std::atof(argv[4]);
  std::filesystem::create_directories(out);
  auto be = backend::make_cpu_backend();
  struct P {
    std::string name;
    std::vector<int64_t> shape;
    bool decay;
  };
  const std::vector<P> specs = {{"layer.weight", {7, 13}, true}, {"layer.bias", {7}, false},
                                {"norm.weight", {13}, false},    {"head.weight", {5, 9}, true}};
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<model::ParamRef> params;
  for (const auto& s : specs) {
    model::ParamRef p;
    p.name = s.name;
    p.shape = s.shape;
    p.numel = 1;
    for (auto d : s.shape) p.numel *= d;
    p.decay = s.decay;
    p.value = static_cast<float*>(be->alloc(p.numel * sizeof(float)));
    p.grad = static_cast<float*>(be->alloc(p.numel * sizeof(float)));
    std::vector<float> v(p.numel);
    for (auto& x : v) x = nd(rng);
    be->upload(p.value, v.data(), v.size() * sizeof(float));
    params.push_back(p);
  }
  auto dump = [&](const std::filesystem::path& file, bool grads) {
    std::vector<std::vector<float>> host;
    std::vector<io::TensorToWrite> t;
    host.reserve(params.size());
    for (const auto& p : params) {
      host.emplace_back(p.numel);
      be->download(host.back().data(), grads ? p.grad : p.value, p.numel * sizeof(float));
      t.push_back({p.name, io::DType::F32, p.shape, host.back().data()});
    }
    io::write_safetensors(file, t);
  };
  dump(out / "init.safetensors", false);
  train::AdamW opt(*be, params, train::AdamWHyper{0.9, 0.95, 1e-8, wd});
  for (int k = 1; k <= steps; ++k) {
    // Gradients of varied scale so that clipping is active on some steps and not on others.
    const float gscale = (k % 2 == 0) ? 3.0f : 0.05f;
    for (const auto& p : params) {
      std::vector<float> g(p.numel);
      for (auto& x : g) x = gscale * nd(rng);
      be->upload(p.grad, g.data(), g.size() * sizeof(float));
    }
    dump(out / ("grads_" + std::to_string(k) + ".safetensors"), true);
    const double lr = 1e-2 * k;
    const double norm = opt.clip_grad_norm(max_norm);
    opt.step(lr);
    std::printf("step %d lr %.17g norm %.17g\n", k, lr, norm);
  }
  dump(out / "final.safetensors", false);
  // Round trip of the optimizer state file.
  opt.save_state(out / "optimizer.safetensors");
  train::AdamW opt2(*be, params, train::AdamWHyper{0.9, 0.95, 1e-8, wd});
  opt2.load_state(out / "optimizer.safetensors");
  std::printf("state steps %lld\n", static_cast<long long>(opt2.steps_done()));
  return 0;
}
