// backend/device.h: the one parser of --device values and the backend factory.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sft::backend
