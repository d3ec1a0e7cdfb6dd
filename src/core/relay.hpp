// Bidirectional relay between two Streams (docs/ARCHITECTURE.md "The relay", docs/PROTOCOLS.md
// "core: relay"): both directions run concurrently; EOF on one side half-closes the other and gives
// the reverse direction a grace period; an optional idle timeout ends a silent relay. Raw TCP on
// both sides moves data with splice(2); otherwise a copy loop that holds a buffer only while bytes
// are in flight. A spliced direction needs no coroutine, and neither does the relay itself: an idle
// spliced tunnel costs one small object and two reactor waits.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/stream.hpp"

namespace gost {

struct ConnInfo;
namespace metrics {
struct Traffic;
}

struct RelayOptions {
  std::chrono::nanoseconds idle_timeout{0};  // 0 = none (GOST's default)
  std::chrono::nanoseconds half_close_grace = std::chrono::seconds(10);
  // Counts the bytes that splice(2) moves through a's socket (bypassing a's Stream, which counts
  // the rest itself): a is the client and its socket the service's raw connection.
  metrics::Traffic* a_traffic = nullptr;
  // Set by relay_logged() (core/tunnel.hpp): when the relay ends it adds its byte counts to this
  // connection's and writes the "<remote> >-< <target>" line with the duration since `since`. When
  // `since` is unset, it starts with the "<remote> <-> <target>" line (and sets it).
  ConnInfo* conn = nullptr;
  std::string_view target{};
  std::chrono::steady_clock::time_point since{};
};

struct RelayStats {
  std::uint64_t a_to_b = 0;  // bytes read from a and written to b
  std::uint64_t b_to_a = 0;
  bool spliced = false;
};

// Completes once both directions are done. `a` and `b` must outlive it.
awaitable<RelayStats> relay(Stream& a, Stream& b, RelayOptions options = {});

// The same relay with nobody waiting for it: it owns both streams, the target's name and the
// connection's record (`conn` is moved from), writes relay_logged()'s lines, and ends the
// connection when the tunnel ends (conn.end, when set), then closes both streams. For
// core/tunnel.hpp relay_to_end().
void relay_detached(StreamPtr a, StreamPtr b, std::string target, ConnInfo&& conn,
                    RelayOptions options);

}  // namespace gost
