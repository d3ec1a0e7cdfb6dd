// A service's accept loop and the life of one accepted connection (docs/PROTOCOLS.md
// "core: services"): transport handshake, handler, logs and request metrics. Both keep the listener
// and the handler alive, so a service that a reload replaces or removes can go away while its
// connections run on.
#pragma once

#include <memory>
#include <string>

#include "core/component.hpp"
#include "policy/admission.hpp"
#include "policy/limiter.hpp"

namespace gost::app {
class TrafficPluginLimiter;
class FleetConnCounter;
}  // namespace gost::app

namespace gost::app {

// The limiters a service applies to each accepted connection (docs/ARCHITECTURE.md "Limiters");
// any may be null. Shared by the service's accept loops on all workers; each connection takes
// the holders' current limiters once (a source may swap them meanwhile).
struct ServiceLimiters {
  std::shared_ptr<policy::TrafficLimiters> traffic;
  std::shared_ptr<policy::ConnLimiters> conn;
  std::shared_ptr<policy::RateLimiters> rate;
  // Instead of `traffic`, when the service's limiter is a plugin (app/traffic_plugin.hpp).
  std::shared_ptr<TrafficPluginLimiter> traffic_plugin;
  // With `conn`, when the service counts its connections across a fleet (ours;
  // app/fleet_climiter.hpp).
  std::shared_ptr<FleetConnCounter> conn_fleet;
};

// Accepts until the listener is closed; each connection runs in its own coroutine. A client the
// service's admissions refuse is closed before anything else (docs/PROTOCOLS.md
// "config: controls"); then the service's limiters apply.
awaitable<void> accept_loop(std::shared_ptr<Listener> listener, std::shared_ptr<Handler> handler,
                            log::Logger log, std::string service,
                            std::shared_ptr<const policy::Admissions> admissions = nullptr,
                            ServiceLimiters limiters = {});

}  // namespace gost::app
