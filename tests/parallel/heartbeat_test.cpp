// Heartbeats between ranks (parallel/heartbeat.h) without MPI: three "ranks" in one process on this host's loopback.
// A rank that stops pumping (frozen, dead) is named once it has been silent past the threshold; live ones are not;
// datagrams of another job (other nonce) are ignored.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "parallel/heartbeat.h"

namespace sft::parallel {
namespace {

using namespace std::chrono_literals;

std::vector<std::unique_ptr<Heartbeat>> make_ranks(int n, uint64_t nonce) {
  std::vector<std::unique_ptr<Heartbeat>> hb;
  std::vector<PeerAddress> all;
  for (int r = 0; r < n; ++r) {
    hb.push_back(std::make_unique<Heartbeat>(r, nonce));
    all.push_back(hb.back()->local_address());
  }
  for (auto& h : hb) h->set_peers(all);
  return hb;
}

// Pumps the given ranks for `d` (each for a short slice in turn, as their watchdog threads would).
void pump_for(const std::vector<Heartbeat*>& ranks, std::chrono::milliseconds d) {
  const auto end = Heartbeat::Clock::now() + d;
  while (Heartbeat::Clock::now() < end)
    for (Heartbeat* h : ranks) h->pump(5ms);
}

TEST(Heartbeat, LiveRanksHearEachOtherAndASilentOneIsNamed) {
  auto hb = make_ranks(3, 42);
  const auto addr = hb[0]->local_address();
  EXPECT_GT(addr.n_ipv4, 0);
  EXPECT_NE(addr.port, 0);
  pump_for({hb[0].get(), hb[1].get(), hb[2].get()}, 1200ms);
  for (const auto& s : hb[0]->monitored()) {
    EXPECT_TRUE(s.ever_heard) << "rank " << s.rank;
    EXPECT_LT(s.silent_s, 1.0) << "rank " << s.rank;
  }
  EXPECT_NE(hb[0]->describe(1.0).find("every monitored rank is alive"), std::string::npos) << hb[0]->describe(1.0);

  // Rank 2 freezes: ranks 0 and 1 keep beating.
  pump_for({hb[0].get(), hb[1].get()}, 1600ms);
  const std::string d = hb[0]->describe(1.0);
  EXPECT_NE(d.find("rank 2 (host "), std::string::npos) << d;
  EXPECT_NE(d.find("silent for"), std::string::npos) << d;
  EXPECT_EQ(d.find("rank 1 "), std::string::npos) << d;  // alive, so not blamed
}

TEST(Heartbeat, OtherJobsAreIgnoredAndNeverHeardIsSaid) {
  auto job_a = make_ranks(2, 1);
  auto job_b = make_ranks(2, 2);
  // Point job A's rank 0 at job B's rank 1 as its "rank 1": B's datagrams carry another nonce.
  std::vector<PeerAddress> mixed = {job_a[0]->local_address(), job_b[1]->local_address()};
  job_a[0]->set_peers(mixed);
  std::vector<PeerAddress> b_all = {job_b[0]->local_address(), job_a[0]->local_address()};
  job_b[1]->set_peers(b_all);  // B's rank 1 beats to A's rank 0 with nonce 2
  pump_for({job_a[0].get(), job_b[1].get()}, 700ms);
  const auto st = job_a[0]->monitored();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_FALSE(st[0].ever_heard);
  EXPECT_NE(job_a[0]->describe(0.5).find("never heard"), std::string::npos) << job_a[0]->describe(0.5);
}

}  // namespace
}  // namespace sft::parallel
