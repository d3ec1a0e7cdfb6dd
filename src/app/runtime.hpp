// The running services and the configuration they were built from, and the one way to change
// them at run time (SIGHUP, -R, the web API): apply() a whole new configuration. Only what
// differs is rebuilt — a service is kept untouched, tunnels and all, when its own entry and
// everything it binds by name (chain, hops, authers) are unchanged — and a change
// is all or nothing: every new or changed service is built and bound before anything running is
// touched, so a bad key or a busy port leaves the running configuration exactly as it was.
// A changed service keeps its port open throughout: its new listener binds beside the old one
// (SO_REUSEPORT) and the old one is closed only once the new one accepts.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "core/asio.hpp"

namespace gost::app {

// What apply() does to the services, by name.
struct ServicePlan {
  std::vector<std::string> added, changed, removed, kept;
  bool operator==(const ServicePlan&) const = default;
};

// Pure: compares two configurations service by service (spec of "changed": see above; a change
// of the global `tls` section changes every service, as it may carry the default certificate).
ServicePlan plan_services(const config::Config& running, const config::Config& next);

class Runtime {
 public:
  explicit Runtime(std::vector<asio::io_context*> workers);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Moves the running services to `next` (see above). Throws ConfigError / system_error with
  // nothing changed. Thread-safe (one apply at a time). Until start() the new services only
  // bind; start() begins serving them all.
  ServicePlan apply(const config::Config& next);
  // apply() of the running configuration as `change` edits it, with no other change in between;
  // what `change` throws goes to the caller with nothing changed.
  ServicePlan update(const std::function<void(config::Config&)>& change);
  void start();
  // Closes every service (their accepted connections are not waited for).
  void stop();
  config::Config config() const;  // the running configuration
  // The named auther as the services use it — inline users, its file/redis/http sources, or its
  // plugin — for @api and @metrics (docs/ARCHITECTURE.md "Sources"): whether `user`/`password`
  // pass; nullopt when no auther has that name. A plugin is asked on the source thread and
  // waited for (bounded by its timeout): never call this on the source thread.
  std::optional<bool> authenticate(const std::string& auther, const std::string& user,
                                   const std::string& password, const std::string& service,
                                   const std::string& client) const;
  // Per running service: when it was created, for the API's status object.
  struct Status {
    std::string name;
    std::int64_t created = 0;  // unix seconds
    std::string address;       // bound address, e.g. "[::]:8080"
  };
  std::vector<Status> status() const;

 private:
  ServicePlan apply_locked(const config::Config& next);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
