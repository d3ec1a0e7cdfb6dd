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

awaitable<void> relay_to_end(StreamPtr client, StreamPtr upstream, std::string target,
                             ConnInfo& conn, RelayOptions options) {
  count_client_splice(options, conn);
  if (conn.end) {
    relay_detached(std::move(client), std::move(upstream), std::move(target), std::move(conn),
                   options);
    co_return;
  }
  options.conn = &conn;
  options.target = target;
  auto relaying = relay(*client, *upstream, options);
  co_await std::move(relaying);
}

void count_client_splice(RelayOptions& options, ConnInfo& conn) {
  conn.authenticated();  // the series is final before its counters are handed out
  if (conn.metrics) options.a_traffic = conn.metrics->traffic();
}

void add_log_field(ConnInfo& conn, const char* key, std::string value) {
  log::Logger grown = conn.log.with(key, std::move(value));
  conn.log = grown;  // a copy assignment reuses conn.log's vector when it is large enough
}

}  // namespace gost
