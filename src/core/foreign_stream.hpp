// A Stream that lives on another worker's executor, used from this one (docs/ARCHITECTURE.md
// "Concurrency": a multiplexed session and its streams stay on one worker). GOST's tunnel server
// joins a visitor accepted on one worker to a connector's mux session on another: each operation
// of the foreign stream runs on its own executor and completes back on the caller's, so neither
// thread touches the other's objects. No raw socket: such a relay copies.
#pragma once

#include <memory>
#include <string>

#include "core/stream.hpp"

namespace gost {

// `s` as a Stream usable on `here`: `s` itself when it already runs there, else a proxy. `s`
// must have been created on its own executor; the proxy destroys it there.
StreamPtr adopt_stream(std::shared_ptr<Stream> s, asio::any_io_executor here);

}  // namespace gost
