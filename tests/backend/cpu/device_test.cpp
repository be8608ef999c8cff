// backend/device.h: the one parser of --device values, the backend factory, and --dtype auto's rule for inference.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_dispatch.h"
#include "backend/cpu/dnnl_gemm.h"
#include "backend/device.h"
#include "util/error.h"

namespace sft::backend {
namespace {

TEST(Device, ParsesTheAcceptedForms) {
  EXPECT_EQ(parse_device("cpu").kind, DeviceSpec::Kind::Cpu);
  EXPECT_EQ(parse_device("cuda").kind, DeviceSpec::Kind::Cuda);
  EXPECT_EQ(parse_device("cuda").index, 0);
  EXPECT_EQ(parse_device("cuda:3").index, 3);
  EXPECT_EQ(parse_device("cuda:3").str(), "cuda:3");
  EXPECT_EQ(parse_device("cpu").str(), "cpu");
}

TEST(Device, BadValuesNameTheFlagInOneLine) {
  for (const char* bad : {"cuda:abc", "cuda:", "cuda:-1", "cuda:1x", "gpu", "", "CPU", "cuda:99999"}) {
    SCOPED_TRACE(bad);
    try {
      parse_device(bad, "--device");
      FAIL() << "accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("--device"), std::string::npos) << msg;
      EXPECT_NE(msg.find("cuda:N"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(Device, FactoryMakesTheCpuBackendAndDescribesDevices) {
  auto be = make_backend("cpu");
  EXPECT_EQ(be->name(), "cpu");
  const auto lines = describe_devices();
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("cpu: ", 0), 0u) << lines[0];
  EXPECT_TRUE(lines[1].find("cuda") != std::string::npos || lines[1].find("CUDA") != std::string::npos) << lines[1];
}

// --dtype auto (inference): bf16 on CUDA; on the CPU only where oneDNN's bf16 matmul runs on AMX (without AMX it is
// slower than fp32, docs/arch/eval.md); never on a kernel variant without native bf16. A rule on what the machine has,
// so the same machine always chooses the same.
TEST(Device, InferenceAutoDtypeFollowsTheRule) {
  const auto be = make_backend(DeviceSpec{});
  const AutoDtype cpu = inference_auto_dtype(DeviceSpec{}, *be);
  EXPECT_EQ(cpu.bf16, be->fast_bf16_gemm() && cpu::dnnl_bf16_uses_amx()) << cpu.reason;
  EXPECT_EQ(cpu.reason.rfind(cpu.bf16 ? "bfloat16 (" : "float32 (", 0), 0u) << cpu.reason;
  EXPECT_EQ(cpu.reason.find('\n'), std::string::npos);
  // AVX512-BF16 without AMX (this project's development VM), with the kernels that feed bf16 to it.
  if (be->fast_bf16_gemm() && cpu::dnnl_bf16_matmul_impl().find("avx512_core_bf16") != std::string::npos) {
    EXPECT_FALSE(cpu.bf16);
    EXPECT_NE(cpu.reason.find("without AMX"), std::string::npos) << cpu.reason;
  }
  EXPECT_EQ(inference_auto_dtype(DeviceSpec{}, *be).reason, cpu.reason);  // the same every time
  // A variant without native bf16 (the baseline kernels every x86-64 CPU runs) never picks bf16.
  const auto generic = cpu::make_cpu_backend_variant("generic");
  ASSERT_FALSE(generic->fast_bf16_gemm());
  const AutoDtype g = inference_auto_dtype(DeviceSpec{}, *generic);
  EXPECT_FALSE(g.bf16);
  EXPECT_NE(g.reason.find("emulated"), std::string::npos) << g.reason;
  // CUDA: bf16 (the rule looks at the device kind only).
  const AutoDtype cuda = inference_auto_dtype(parse_device("cuda:0"), *be);
  EXPECT_TRUE(cuda.bf16);
  EXPECT_EQ(cuda.reason.rfind("bfloat16 (CUDA", 0), 0u) << cuda.reason;
}

}  // namespace
}  // namespace sft::backend
