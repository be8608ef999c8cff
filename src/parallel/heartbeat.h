// Liveness of the other ranks, outside MPI: every rank sends a small UDP datagram to its peers twice a second and
// records when it last heard from each. MPI itself cannot say who is missing: a collective blocked on a dead,
// frozen (SIGSTOP) or unreachable rank (its host's link cut) just waits. When the watchdog gives up after
// --ddp_timeout, the heartbeats name the rank(s) and host(s) that went silent (parallel/mpi_communicator.cpp).
//
// Plain POSIX sockets (no MPI, no threads of its own): the communicator exchanges the addresses once at start-up and
// its watchdog thread calls pump(). Datagrams carry a per-job random nonce, so other jobs' heartbeats are ignored.
// Peers on the same host (same host name) are reached over loopback, others at every IPv4 address they reported.
// Jobs of up to 64 ranks monitor every peer; larger ones their 16 ring neighbours (r-8..r+8), which bounds the
// traffic at 32 datagrams/s per rank.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace sft::parallel {

// Where a rank listens; plain data so that it can be all-gathered as bytes.
struct PeerAddress {
  char host[64] = {0};      // gethostname()
  uint32_t ipv4[8] = {0};   // this host's IPv4 addresses, network byte order
  int32_t n_ipv4 = 0;
  uint16_t port = 0;        // network byte order
};

class Heartbeat {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kInterval = std::chrono::milliseconds(500);

  // Opens a UDP socket on an ephemeral port of every interface; throws sft::Error when it cannot.
  Heartbeat(int rank, uint64_t job_nonce);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  PeerAddress local_address() const;
  // Every rank's address (index = rank); picks the peers to monitor (see above). Call once, before pump().
  void set_peers(const std::vector<PeerAddress>& all);
  // Receives for up to `wait`, recording who was heard, and sends this rank's heartbeat when one is due.
  void pump(std::chrono::milliseconds wait);

  struct PeerState {
    int rank = 0;
    std::string host;
    double silent_s = 0;      // seconds since last heard (since set_peers when never heard)
    bool ever_heard = false;
  };
  std::vector<PeerState> monitored() const;
  // One clause for an error message: which monitored peers have been silent longer than `threshold_s`, or that every
  // monitored peer is alive (then the ranks diverged or a peer is slow, rather than gone).
  std::string describe(double threshold_s) const;

 private:
  void send_beats();

  int rank_;
  uint64_t nonce_;
  int fd_ = -1;
  uint32_t seq_ = 0;
  PeerAddress self_;
  std::vector<PeerAddress> peers_;  // all ranks
  std::vector<int> monitored_;
  std::vector<Clock::time_point> last_heard_;  // per rank
  std::vector<bool> heard_;
  Clock::time_point since_, next_send_;
};

}  // namespace sft::parallel
