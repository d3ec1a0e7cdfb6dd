// Turns a configuration into running services (docs/PROTOCOLS.md "core: services"), runs them on
// the workers, and reloads them: SIGHUP, the -R period and the web API's POST /config/reload
// re-read the configuration sources and apply the difference (app/runtime.hpp).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "config/model.hpp"

namespace gost::app {

struct ProgramOptions {
  unsigned workers = 1;
  // Reads the configuration sources again (command line, files, environment); throws.
  std::function<config::Config()> load;
  std::string config_file;  // the -C file, if exactly one: where the API saves by default
  std::chrono::nanoseconds reload_period{0};  // -R; 0 = off
};

class Program {
 public:
  // Builds every object and binds every listener; throws ConfigError / system_error on failure.
  Program(const config::Config& cfg, ProgramOptions options);
  ~Program();
  // Serves until SIGINT/SIGTERM; then closes the services.
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
