// The tunnel server's connectors (docs/PROTOCOLS.md "tunnel"): the mux sessions connectors
// registered with relay BIND + tunnel ID, per tunnel ID, shared by every worker of the service
// (go-gost/x handler/tunnel tunnel.go: ConnectorPool, Tunnel, Connector; dialer.go: Dialer). A
// session lives on the worker that accepted its connector; a stream opened on it for a visitor on
// another worker is used through adopt_stream (core/foreign_stream.hpp).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/stream.hpp"
#include "net/mux.hpp"
#include "proto/relay.hpp"

namespace gost::tunnel {

struct Connector {
  proto::relay::TunnelId id;  // the connector ID: FLAG 0x01 = UDP, WEIGHT as the connector asked
  std::shared_ptr<net::MuxSession> session;  // used on `executor` only
  asio::any_io_executor executor;
  std::atomic<bool> closed{false};  // set on `executor` when the session has ended
};

class Registry {
 public:
  // Bounds of ours (GOST has none): connectors per tunnel ID, tunnel IDs per service.
  static constexpr std::size_t kMaxConnectorsPerTunnel = 256;
  static constexpr std::size_t kMaxTunnels = 65536;

  // false when a bound is reached.
  bool add(const std::string& tunnel, std::shared_ptr<Connector> c);
  void remove(const std::string& tunnel, const Connector* c);
  // GOST's Tunnel.GetConnector: the only connector, if open; else a weighted random choice among
  // the open connectors of the network ("udp" or not), weight 0 counting as 1, and connectors of
  // weight 255 preferred to all others. Null when none.
  std::shared_ptr<Connector> select(const std::string& tunnel, std::string_view network);
  std::size_t connectors(const std::string& tunnel);
  // Every connector (to close them all).
  std::vector<std::shared_ptr<Connector>> all();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Connector>>> tunnels_;
  std::mt19937 rng_{std::random_device{}()};
};

// GOST's Dialer: up to 3 tries to choose a connector of `tunnel` and open a stream on its
// session; then writes `header` (a relay response naming source and destination) on the stream.
// The stream is usable on the caller's executor. Null when no connector is available.
awaitable<StreamPtr> dial_connector(Registry& registry, const std::string& tunnel,
                                    std::string_view network, std::string header,
                                    std::string* connector_id = nullptr);

}  // namespace gost::tunnel
