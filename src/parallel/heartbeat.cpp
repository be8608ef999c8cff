#include "parallel/heartbeat.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "util/error.h"

namespace sft::parallel {

namespace {

struct Beat {
  char magic[8];
  uint64_t nonce;
  int32_t rank;
  uint32_t seq;
};
constexpr char kMagic[8] = {'s', 'f', 't', 'h', 'b', '0', '1', '\0'};
constexpr uint32_t kLoopback = 0x7F000001;  // 127.0.0.1, host byte order

double seconds(Heartbeat::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Heartbeat::Heartbeat(int rank, uint64_t job_nonce) : rank_(rank), nonce_(job_nonce) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  SFT_CHECK(fd_ >= 0, "rank ", rank, ": cannot open the heartbeat socket (", std::strerror(errno), ")");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error("rank " + std::to_string(rank) + ": cannot bind the heartbeat socket (" + std::strerror(err) + ")");
  }
  self_.port = a.sin_port;
  if (::gethostname(self_.host, sizeof self_.host - 1) != 0) std::snprintf(self_.host, sizeof self_.host, "?");
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i && self_.n_ipv4 < 8; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
        self_.ipv4[self_.n_ipv4++] = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr;
    ::freeifaddrs(ifs);
  }
  since_ = next_send_ = Clock::now();
}

Heartbeat::~Heartbeat() {
  if (fd_ >= 0) ::close(fd_);
}

PeerAddress Heartbeat::local_address() const { return self_; }

void Heartbeat::set_peers(const std::vector<PeerAddress>& all) {
  peers_ = all;
  const int world = static_cast<int>(all.size());
  monitored_.clear();
  if (world <= 64) {
    for (int r = 0; r < world; ++r)
      if (r != rank_) monitored_.push_back(r);
  } else {
    for (int d = -8; d <= 8; ++d)
      if (d != 0) monitored_.push_back(((rank_ + d) % world + world) % world);
    std::sort(monitored_.begin(), monitored_.end());
    monitored_.erase(std::unique(monitored_.begin(), monitored_.end()), monitored_.end());
  }
  since_ = Clock::now();
  last_heard_.assign(all.size(), since_);
  heard_.assign(all.size(), false);
}

void Heartbeat::send_beats() {
  Beat b{};
  std::memcpy(b.magic, kMagic, sizeof kMagic);
  b.nonce = nonce_;
  b.rank = rank_;
  b.seq = seq_++;
  for (int r : monitored_) {
    const PeerAddress& p = peers_[static_cast<size_t>(r)];
    const bool same_host = std::strncmp(p.host, self_.host, sizeof p.host) == 0;
    if (p.port == 0) continue;  // that rank could not open its socket
    for (int k = 0; k < p.n_ipv4 && k < 8; ++k) {
      const bool loopback = ntohl(p.ipv4[k]) == kLoopback;
      if (loopback != same_host) continue;  // same host: loopback only; another host: its real addresses
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_addr.s_addr = p.ipv4[k];
      to.sin_port = p.port;
      // Never blocks; a lost datagram or an unreachable host (ENETUNREACH, EHOSTUNREACH) is exactly what the
      // receiving side is there to notice.
      (void)::sendto(fd_, &b, sizeof b, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
  }
}

void Heartbeat::pump(std::chrono::milliseconds wait) {
  const auto now = Clock::now();
  if (now >= next_send_) {
    send_beats();
    next_send_ = now + kInterval;
  }
  const auto until_send = std::chrono::duration_cast<std::chrono::milliseconds>(next_send_ - now);
  pollfd pfd{fd_, POLLIN, 0};
  const int r = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, std::min(wait, until_send).count())));
  if (r <= 0) return;
  Beat b{};
  while (true) {
    const ssize_t n = ::recv(fd_, &b, sizeof b, MSG_DONTWAIT);
    if (n < 0) break;  // EAGAIN: drained
    if (n != static_cast<ssize_t>(sizeof b) || std::memcmp(b.magic, kMagic, sizeof kMagic) != 0 || b.nonce != nonce_ ||
        b.rank < 0 || b.rank >= static_cast<int32_t>(last_heard_.size()))
      continue;  // not ours (another job, a stray datagram)
    last_heard_[static_cast<size_t>(b.rank)] = Clock::now();
    heard_[static_cast<size_t>(b.rank)] = true;
  }
}

std::vector<Heartbeat::PeerState> Heartbeat::monitored() const {
  std::vector<PeerState> out;
  const auto now = Clock::now();
  for (int r : monitored_) {
    PeerState s;
    s.rank = r;
    s.host = peers_[static_cast<size_t>(r)].host;
    s.silent_s = seconds(now - last_heard_[static_cast<size_t>(r)]);
    s.ever_heard = heard_[static_cast<size_t>(r)];
    out.push_back(s);
  }
  return out;
}

std::string Heartbeat::describe(double threshold_s) const {
  std::vector<PeerState> silent;
  for (const PeerState& s : monitored())
    if (s.silent_s > threshold_s) silent.push_back(s);
  if (monitored_.empty()) return "no other rank is monitored";
  if (silent.empty())
    return "every monitored rank is alive (heartbeats within " + std::to_string(static_cast<int>(threshold_s + 0.5)) +
           " s): the ranks diverged (different settings or data) or one is very slow";
  std::sort(silent.begin(), silent.end(), [](const PeerState& a, const PeerState& b) { return a.silent_s > b.silent_s; });
  std::string out;
  for (size_t i = 0; i < silent.size(); ++i) {
    char buf[256];
    if (silent[i].ever_heard)
      std::snprintf(buf, sizeof buf, "%srank %d (host %s) silent for %.1f s", i ? ", " : "", silent[i].rank,
                    silent[i].host.c_str(), silent[i].silent_s);
    else
      std::snprintf(buf, sizeof buf, "%srank %d (host %s) never heard (UDP blocked between the hosts?)", i ? ", " : "",
                    silent[i].rank, silent[i].host.c_str());
    out += buf;
  }
  return "lost: " + out + " (dead, frozen, or its host unreachable)";
}

}  // namespace sft::parallel
