// "Once per outage" (docs/ARCHITECTURE.md "Sources"): a source or plugin that fails is logged when
// it starts failing and once when it recovers, not at every failed read or question. Safe to use
// from several threads at once: a plugin is asked on every worker.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "core/log.hpp"

namespace gost::source {

class OutageLog {
 public:
  // `what` names the failing thing ("file loader", "admission a: plugin http://..."); `meanwhile`
  // says what happens while it fails.
  OutageLog(log::Logger log, std::string what, std::string meanwhile)
      : log_(std::move(log)), what_(std::move(what)), meanwhile_(std::move(meanwhile)) {}

  // A warning when this starts an outage, nothing while it lasts.
  void failed(std::string_view error) {
    if (!failing_.exchange(true, std::memory_order_relaxed))
      log_.warn(what_ + ": " + std::string(error) + " (" + meanwhile_ + ")");
  }
  // An info line when this ends an outage.
  void ok() {
    if (failing_.load(std::memory_order_relaxed) &&
        failing_.exchange(false, std::memory_order_relaxed))
      log_.info(what_ + ": recovered");
  }

 private:
  log::Logger log_;
  std::string what_;
  std::string meanwhile_;
  std::atomic<bool> failing_{false};
};

}  // namespace gost::source
