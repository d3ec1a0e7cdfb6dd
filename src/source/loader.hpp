// Dynamic sources (docs/ARCHITECTURE.md "Sources"): a control's `file`, `redis` and `http` blocks
// read at start and every `reload` period, on the source thread, never on a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "core/asio.hpp"
#include "core/log.hpp"
#include "source/fetch.hpp"
#include "source/text.hpp"

namespace gost::source {

struct Sources {
  std::optional<FileOptions> file;
  std::optional<RedisOptions> redis;
  std::optional<HttpOptions> http;
  std::chrono::nanoseconds reload{0};  // <= 0: read once; under 1s: 1s (go-gost/x)
  bool empty() const { return !file && !redis && !http; }
};

// The process-wide executor the loaders run on: one thread with its own io_context, started on
// first use (docs/ARCHITECTURE.md "Concurrency").
asio::any_io_executor executor();

// Reads its sources, merges what each last read well (file, then Redis, then HTTP, GOST's order)
// and hands the merge to `on_update` — on the source thread, at start and whenever it changed.
// A source that cannot be read keeps its last good data; its error is logged once per outage, and
// its recovery once (go-gost/x drops a failed source's entries at the next reload instead).
class Loader {
 public:
  using Callback = std::function<void(const Data&)>;

  // Reads every source once before returning (bounded by their timeouts: GOST's authers load
  // synchronously too), then reloads every period. Must not be called on the source thread.
  static std::shared_ptr<Loader> start(Sources sources, Format format, log::Logger log,
                                       Callback on_update);
  ~Loader();  // stops reloading; a read in flight ends within its timeout
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  struct State;

 private:
  explicit Loader(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

}  // namespace gost::source
