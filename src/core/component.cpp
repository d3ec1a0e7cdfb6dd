#include "core/component.hpp"

#include <fmt/format.h>

#include "core/metrics.hpp"

namespace gost {

void ConnInfo::authenticated() {
  if (metrics) metrics->set_user(client_id);
}

ConnInfo ConnInfo::child() const {
  ConnInfo c;
  c.remote = remote;
  c.local = local;
  c.client_id = client_id;
  c.log = log;
  return c;
}

void ConnInfo::failed() {
  if (metrics) metrics->fail();
}

void reject_unsupported(const config::Metadata& md, std::initializer_list<std::string_view> keys,
                        std::string_view where) {
  for (auto key : keys)
    if (md.contains(key))
      throw config::ConfigError(
          fmt::format("{}: option \"{}\" is not supported by this implementation", where, key));
}

void reject_unsupported_handler_options(const config::Metadata& md, std::string_view where) {
  reject_unsupported(md,
                     {"sniffing",
                      "sniffing.timeout",
                      "sniffing.websocket",
                      "sniffing.websocket.sampleRate",
                      "mitm.certFile",
                      "mitm.caCertFile",
                      "mitm.keyFile",
                      "mitm.caKeyFile",
                      "mitm.alpn",
                      "mitm.bypass",
                      "skipauth",
                      "hash",
                      "limiter.in",
                      "limiter.out",
                      "limiter.conn.in",
                      "limiter.conn.out"},
                     where);
}

awaitable<std::unique_ptr<Binding>> Connector::bind(StreamPtr, std::string_view network,
                                                    std::string_view address, const BindOptions&,
                                                    const log::Logger&) {
  throw system_error(
      asio::error::operation_not_supported,
      fmt::format("bind on {}/{}: the connector does not support BIND", address, network));
  co_return nullptr;
}

}  // namespace gost
