#include "core/tunnel.hpp"

#include <fmt/format.h>

#include "core/metrics.hpp"

namespace gost {

awaitable<void> relay_logged(Stream& client, Stream& upstream, std::string_view target,
                             ConnInfo& conn, RelayOptions options) {
  auto start = std::chrono::steady_clock::now();
  conn.log.info(fmt::format("{} <-> {}", conn.remote, target));
  count_client_splice(options, conn);
  auto stats = co_await relay(client, upstream, options);
  conn.input_bytes += stats.a_to_b;
  conn.output_bytes += stats.b_to_a;
  conn.log.info(fmt::format("{} >-< {}", conn.remote, target),
                {{"duration", (std::chrono::steady_clock::now() - start).count()}});
}

void count_client_splice(RelayOptions& options, ConnInfo& conn) {
  conn.authenticated();  // the series is final before its counters are handed out
  if (conn.metrics) options.a_traffic = conn.metrics->traffic();
}

}  // namespace gost
