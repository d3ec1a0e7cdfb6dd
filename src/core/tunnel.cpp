#include "core/tunnel.hpp"

#include "core/metrics.hpp"

namespace gost {

awaitable<RelayStats> relay_logged(Stream& client, Stream& upstream, std::string_view target,
                                   ConnInfo& conn, RelayOptions options) {
  count_client_splice(options, conn);
  options.conn = &conn;
  options.target = target;
  return relay(client, upstream, options);
}

void count_client_splice(RelayOptions& options, ConnInfo& conn) {
  conn.authenticated();  // the series is final before its counters are handed out
  if (conn.metrics) options.a_traffic = conn.metrics->traffic();
}

void add_log_field(ConnInfo& conn, std::string key, std::string value) {
  log::Logger grown = conn.log.with(std::move(key), std::move(value));
  conn.log = grown;  // a copy assignment reuses conn.log's vector when it is large enough
}

}  // namespace gost
