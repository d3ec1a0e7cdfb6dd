#include "app/program.hpp"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <thread>

#include "app/api_server.hpp"
#include "app/metrics_server.hpp"
#include "app/runtime.hpp"
#include "core/buffer_pool.hpp"
#include "core/component.hpp"
#include "core/log.hpp"
#include "core/memory.hpp"
#include "core/metrics.hpp"
#include "net/tls.hpp"

namespace gost::app {
namespace {

// The `@metrics` endpoint of a `metrics` section with an address (docs/PROTOCOLS.md
// "observability: metrics").
std::unique_ptr<MetricsServer> make_metrics_server(const config::Config& cfg, Runtime& runtime) {
  const auto& mc = *cfg.metrics;
  MetricsServer::Checker auth;
  if (!mc.auther.empty()) {
    // A named auther replaces `auth`; GOST lets everyone in when the name is not defined. The
    // running auther of that name is asked, sources and plugin included (Runtime::authenticate).
    auto it = std::find_if(cfg.authers.begin(), cfg.authers.end(),
                           [&](const auto& a) { return a.name == mc.auther; });
    if (it == cfg.authers.end()) {
      log::root().warn(fmt::format(
          "metrics: auther \"{}\" is not defined: the endpoint is not authenticated", mc.auther));
    } else {
      auth = [&runtime, name = mc.auther](const std::string& user, const std::string& password,
                                          const std::string& remote) {
        return runtime.authenticate(name, user, password, "@metrics", remote).value_or(true);
      };
    }
  } else if (mc.auth && !mc.auth->username.empty()) {
    auth = [u = mc.auth->username, p = mc.auth->password](
               const std::string& user, const std::string& password, const std::string&) {
      return user == u && password == p;
    };
  }
  auto server = std::make_unique<MetricsServer>(*metrics::global(), mc.addr, mc.path, auth);
  log::root()
      .with({{"kind", "service"}, {"service", "@metrics"}})
      .info(fmt::format("listening on {}", server->bound_address()));
  return server;
}

}  // namespace

struct Program::Impl {
  ProgramOptions options;
  std::vector<std::unique_ptr<asio::io_context>> workers;
  std::unique_ptr<Runtime> runtime;
  std::optional<config::Metrics> metrics_config;
  std::optional<config::Api> api_config;
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<ApiServer> api_server;
  bool serving = false;

  // The global servers of `cfg` (docs/PROTOCOLS.md "observability: reload"): rebuilt only when
  // their section changed. A server that cannot bind keeps the old one (and the error is reported).
  void apply_globals(const config::Config& cfg) {
    if (cfg.metrics != metrics_config) {
      const bool on = cfg.metrics && !cfg.metrics->addr.empty();
      if (on) metrics::enable(cfg.metrics->userLabel);
      metrics_server.reset();  // frees the port first: the new one usually takes the same
      if (on) {
        metrics_server = make_metrics_server(cfg, *runtime);
        if (serving) metrics_server->start();
      }
      metrics_config = cfg.metrics;
    }
    if (cfg.api != api_config) {
      api_server.reset();
      if (cfg.api) {
        api_server =
            std::make_unique<ApiServer>(*cfg.api, *runtime,
                                        ApiServer::Hooks{.reload = [this] { reload(false); },
                                                         .config_file = options.config_file});
        if (serving) api_server->start();
      }
      api_config = cfg.api;
    }
  }

  // SIGHUP / -R (`globals`: also the api and metrics servers) and POST /config/reload.
  void reload(bool globals) {
    config::Config next = options.load();
    auto running_tls = runtime->config().tls;
    if (next.tls != running_tls) net::init_default_certificate(next.tls);
    ServicePlan plan;
    try {
      plan = runtime->apply(next);
    } catch (...) {
      if (next.tls != running_tls) net::init_default_certificate(running_tls);
      throw;
    }
    log::root().debug(fmt::format("reload: {} added, {} changed, {} removed, {} kept",
                                  plan.added.size(), plan.changed.size(), plan.removed.size(),
                                  plan.kept.size()));
    // Only once the services took the new configuration (a failed reload changes nothing).
    log::configure(next.log, next.loggers);
    if (globals) apply_globals(next);
  }
};

Program::Program(const config::Config& cfg, ProgramOptions options) : impl_(new Impl) {
  impl_->options = std::move(options);
  net::init_default_certificate(cfg.tls);
  if (cfg.metrics && !cfg.metrics->addr.empty()) metrics::enable(cfg.metrics->userLabel);
  std::vector<asio::io_context*> workers;
  for (unsigned i = 0; i < std::max(1u, impl_->options.workers); ++i) {
    impl_->workers.push_back(std::make_unique<asio::io_context>(1));
    workers.push_back(impl_->workers.back().get());
  }
  impl_->runtime = std::make_unique<Runtime>(std::move(workers));
  impl_->runtime->apply(cfg);
  impl_->apply_globals(cfg);
}

Program::~Program() = default;

void Program::run() {
  auto& im = *impl_;
  // Signals are delivered to this thread only (blocked everywhere before workers start).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  im.runtime->start();
  im.serving = true;
  if (im.metrics_server) im.metrics_server->start();
  if (im.api_server) im.api_server->start();
  std::vector<std::thread> threads;
  for (auto& w : im.workers)
    threads.emplace_back([ctx = w.get()] {
      auto guard = asio::make_work_guard(*ctx);
      ctx->run();
    });

  auto reload = [&im] {
    try {
      im.reload(true);
      log::root().info("config reloaded");
    } catch (const std::exception& e) {
      log::root().error(error_text(e));
    }
  };
  const auto period = im.options.reload_period;
  auto next_reload = std::chrono::steady_clock::now() + period;
  for (;;) {
    // Wake up once a second to give memory back after a load drop (core/memory.hpp) and to run
    // the -R reload when it is due.
    const timespec tick{1, 0};
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig < 0) {
      memory::release_after_load_drop([&im] {
        for (auto& w : im.workers)
          asio::post(*w, [] {
            shed_pooled();
            memory::release_thread_heap();
          });
      });
      if (period.count() > 0 && std::chrono::steady_clock::now() >= next_reload) {
        reload();
        next_reload = std::chrono::steady_clock::now() + period;
      }
      continue;
    }
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    log::root().info(fmt::format("received signal {}, shutting down",
                                 sig == SIGINT ? "interrupt" : "terminated"));
    break;
  }
  if (im.api_server) im.api_server->stop();
  im.runtime->stop();
  for (auto& w : im.workers) w->stop();
  for (auto& t : threads) t.join();
  if (im.metrics_server) im.metrics_server->stop();
}

}  // namespace gost::app
