// What the files of the QUIC engine (net/quic*.cpp) share: limits, the clock ngtcp2 runs on,
// random bytes, connection IDs as map keys, socket addresses, waiting on a timer used as a
// condition, and GnuTLS certificate credentials. Internal: other code uses net/quic.hpp.
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "net/quic.hpp"
#include "net/udp.hpp"

namespace gost::net::quic {

using Clock = std::chrono::steady_clock;
using udp = asio::ip::udp;

constexpr std::size_t kCidLen = 18;
constexpr std::size_t kMaxHead = 64 * 1024;  // received header section (bytes, as counted)
constexpr std::size_t kMaxBatch = 65000;     // one sendmsg (GSO) / one GRO datagram
constexpr std::size_t kMaxSegments = 44;     // GSO segments per sendmsg
constexpr std::size_t kMinInitial = 1200;    // RFC 9000 §14.1
constexpr int kRecvBudget = 128;             // datagrams per wake-up before yielding
// A DATAGRAM frame's overhead in a 1-RTT packet beside its payload: the short header (1 byte,
// a connection ID of up to 20, a packet number of up to 4), the frame's type and length (3) and
// the AEAD tag (16).
constexpr std::size_t kDatagramOverhead = 1 + 20 + 4 + 3 + 16;

inline ngtcp2_tstamp now_ts() {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

inline void random_bytes(std::uint8_t* p, std::size_t n) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0)
    throw system_error(asio::error::no_memory, "quic: no random bytes");
}

inline std::string cid_key(const std::uint8_t* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}
inline std::string cid_key(const ngtcp2_cid& c) { return cid_key(c.data, c.datalen); }

inline std::string sockaddr_text(const sockaddr_storage& sa) {
  udp::endpoint ep;
  std::memcpy(ep.data(), &sa,
              sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  return endpoint_text(ep);
}

inline socklen_t sockaddr_len(const sockaddr_storage& sa) {
  return sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// Waits on `cond` until woken (true) or `deadline` (false).
inline awaitable<bool> wait_until(asio::steady_timer& cond, Clock::time_point deadline) {
  cond.expires_at(deadline);
  auto [ec] = co_await cond.async_wait(use_nothrow);
  co_return ec == asio::error::operation_aborted;
}
inline Clock::time_point deadline_after(std::chrono::nanoseconds d) {
  return d.count() > 0 ? Clock::now() + d : Clock::time_point::max();
}

struct Credentials {
  gnutls_certificate_credentials_t cred = nullptr;
  Credentials() {
    if (gnutls_certificate_allocate_credentials(&cred) != 0)
      throw std::runtime_error("quic: cannot allocate credentials");
  }
  ~Credentials() { gnutls_certificate_free_credentials(cred); }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;
};

}  // namespace gost::net::quic
