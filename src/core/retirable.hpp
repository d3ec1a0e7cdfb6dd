// A component that holds something beyond its connections (the tunnel handler: its entrypoint
// listeners and its connectors' sessions) and must let go of it when the runtime retires its
// service on a reload or removal (docs/ARCHITECTURE.md "Reload and the runtime"). The runtime
// asks it with a dynamic_cast, so components without such state need nothing.
#pragma once

namespace gost {

class Retirable {
 public:
  virtual ~Retirable() = default;
  // Called once, from the runtime's thread, when the service's listeners are retired.
  virtual void retire() = 0;
};

}  // namespace gost
