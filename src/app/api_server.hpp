// GOST's web API `@api` (docs/PROTOCOLS.md "observability: web API"): read the running
// configuration, create, replace and delete services, chains, hops and authers, reload, save. Every
// change goes through Runtime::update(), so it rebinds only the services it touches and is all or
// nothing.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "app/runtime.hpp"
#include "config/model.hpp"

namespace gost::app {

class ApiServer {
 public:
  struct Hooks {
    // POST /config/reload: re-reads the configuration sources and applies them to the services;
    // throws (with nothing changed) on failure.
    std::function<void()> reload;
    // Where POST /config saves without a `path`: the -C file, or "" for gost.yaml / gost.json
    // in the working directory.
    std::string config_file;
  };
  // Binds `api.addr` now (throws system_error / ConfigError).
  ApiServer(const config::Api& api, Runtime& runtime, Hooks hooks);
  ~ApiServer();
  void start();
  void stop();
  std::string bound_address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
