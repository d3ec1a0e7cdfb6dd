#include "source/loader.hpp"

#include <fmt/format.h>

#include <future>
#include <memory>
#include <thread>

#include "source/outage.hpp"

namespace gost::source {
namespace {

class SourceThread {
 public:
  SourceThread() : guard_(asio::make_work_guard(ctx_)), thread_([this] { ctx_.run(); }) {}
  ~SourceThread() {
    guard_.reset();
    ctx_.stop();
    thread_.join();
  }
  asio::io_context& context() { return ctx_; }
  bool on_this_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  asio::io_context ctx_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

SourceThread& source_thread() {
  static SourceThread t;
  return t;
}

}  // namespace

asio::any_io_executor executor() { return source_thread().context().get_executor(); }

struct Loader::State {
  Sources sources;
  Format format;
  log::Logger log;
  Callback on_update;
  std::atomic<bool> stopped{false};
  asio::steady_timer timer;
  // Per source (file, redis, http): its last good data and its outages.
  Data good[3];
  std::unique_ptr<OutageLog> outages[3];
  std::optional<Data> published;

  State(asio::any_io_executor ex) : timer(ex) {}

  void outcome(int i, const char* name, const std::exception* e) {
    if (!outages[i])
      outages[i] = std::make_unique<OutageLog>(log, fmt::format("{} loader", name),
                                               "keeping the last good data until it recovers");
    if (e)
      outages[i]->failed(error_text(*e));
    else
      outages[i]->ok();
  }

  awaitable<void> round() {
    if (sources.file) {
      try {
        good[0] = parse(read_file_text(sources.file->path), format);
        outcome(0, "file", nullptr);
      } catch (const std::exception& e) {
        outcome(0, "file", &e);
      }
    }
    if (sources.redis) {
      try {
        good[1] = co_await redis_fetch(*sources.redis, format);
        outcome(1, "redis", nullptr);
      } catch (const std::exception& e) {
        outcome(1, "redis", &e);
      }
    }
    if (sources.http) {
      try {
        good[2] = parse(co_await http_get(*sources.http), format);
        outcome(2, "http", nullptr);
      } catch (const std::exception& e) {
        outcome(2, "http", &e);
      }
    }
    Data merged;
    for (const auto& d : good) {
      merged.lines.insert(merged.lines.end(), d.lines.begin(), d.lines.end());
      merged.pairs.insert(merged.pairs.end(), d.pairs.begin(), d.pairs.end());
    }
    if (published && *published == merged) co_return;
    log.debug(fmt::format("load items {}", merged.lines.size() + merged.pairs.size()));
    if (!stopped) on_update(merged);
    published = std::move(merged);
  }
};

namespace {

awaitable<void> run(std::shared_ptr<Loader::State> s, std::shared_ptr<std::promise<void>> first) {
  try {
    co_await s->round();
  } catch (...) {
  }
  first->set_value();
  first.reset();
  if (s->sources.reload.count() <= 0) co_return;
  const auto period =
      std::max<std::chrono::nanoseconds>(s->sources.reload, std::chrono::seconds(1));
  while (!s->stopped) {
    s->timer.expires_after(period);
    co_await s->timer.async_wait(use_nothrow);
    if (s->stopped) break;
    try {
      co_await s->round();
    } catch (...) {
    }
  }
}

}  // namespace

std::shared_ptr<Loader> Loader::start(Sources sources, Format format, log::Logger log,
                                      Callback on_update) {
  if (source_thread().on_this_thread())
    throw std::logic_error("source::Loader::start on the source thread");
  auto s = std::make_shared<State>(executor());
  s->sources = std::move(sources);
  s->format = format;
  s->log = std::move(log);
  s->on_update = std::move(on_update);
  auto first = std::make_shared<std::promise<void>>();
  auto done = first->get_future();
  asio::co_spawn(executor(), run(s, std::move(first)), asio::detached);
  done.wait();
  return std::shared_ptr<Loader>(new Loader(std::move(s)));
}

Loader::~Loader() {
  state_->stopped = true;
  asio::post(executor(), [s = state_] { s->timer.cancel(); });
}

}  // namespace gost::source
