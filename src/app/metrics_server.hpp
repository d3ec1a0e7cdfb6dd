// The global Prometheus endpoint `@metrics` (docs/PROTOCOLS.md "observability: metrics"): an
// HTTP/1.1 server (Boost.Beast) on its own thread, so that a scrape never runs on a worker.
#pragma once

#include <memory>
#include <string>

#include "core/auth.hpp"
#include "core/metrics.hpp"

namespace gost::app {

class MetricsServer {
 public:
  // Binds `addr` now (throws system_error / ConfigError); `path` empty = "/metrics"; `auth` null =
  // no authentication.
  MetricsServer(metrics::Registry& registry, const std::string& addr, std::string path,
                std::shared_ptr<const Authenticator> auth);
  ~MetricsServer();
  void start();  // serves on a thread of its own
  void stop();
  std::string bound_address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
