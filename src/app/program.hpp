// Turns a configuration into running services (spec/core.md §2) and runs them on the workers.
#pragma once

#include <memory>

#include "config/model.hpp"

namespace gost::app {

class Program {
 public:
  // Builds every object and binds every listener; throws ConfigError / system_error on failure.
  Program(const config::Config& cfg, unsigned workers);
  ~Program();
  // Serves until SIGINT/SIGTERM; then closes the services.
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gost::app
