// A service's accept loop and the life of one accepted connection (docs/PROTOCOLS.md
// "core: services"): transport handshake, handler, logs and request metrics. Both keep the listener
// and the handler alive, so a service that a reload replaces or removes can go away while its
// connections run on.
#pragma once

#include <memory>
#include <string>

#include "core/component.hpp"
#include "policy/admission.hpp"

namespace gost::app {

// Accepts until the listener is closed; each connection runs in its own coroutine. A client the
// service's admissions refuse is closed before anything else (docs/PROTOCOLS.md
// "config: controls").
awaitable<void> accept_loop(std::shared_ptr<Listener> listener, std::shared_ptr<Handler> handler,
                            log::Logger log, std::string service,
                            std::shared_ptr<const policy::Admissions> admissions = nullptr);

}  // namespace gost::app
