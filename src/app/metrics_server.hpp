// The global Prometheus endpoint `@metrics` (docs/PROTOCOLS.md "observability: metrics"): an
// HTTP/1.1 server (Boost.Beast) on its own thread, so that a scrape never runs on a worker.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/metrics.hpp"

namespace gost::app {

class MetricsServer {
 public:
  // Whether a request's Basic credentials (and the client's "ip:port") pass; runs on the
  // server's thread.
  using Checker = std::function<bool(const std::string& user, const std::string& password,
                                     const std::string& remote)>;
  // Binds `addr` now (throws system_error / ConfigError); `path` empty = "/metrics"; `auth` empty =
  // no authentication.
  MetricsServer(metrics::Registry& registry, const std::string& addr, std::string path,
                Checker auth);
  ~MetricsServer();
  void start();  // serves on a thread of its own
  void stop();
  std::string bound_address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
