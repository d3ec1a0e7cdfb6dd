// gost: command line → configuration → services (docs/PROTOCOLS.md "cli: flags").
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "app/flags.hpp"
#include "app/program.hpp"
#include "config/loader.hpp"
#include "config/printer.hpp"
#include "config/url_parser.hpp"
#include "core/asio.hpp"
#include "core/component.hpp"
#include "core/log.hpp"
#include "core/memory.hpp"

namespace {

using namespace gost;

[[noreturn]] void fatal(const std::string& msg) {
  log::root().write(log::Level::fatal, msg);
  std::fflush(stderr);
  std::_Exit(1);
}

// Go raises the soft descriptor limit to the hard one at start; so do we (many idle tunnels).
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

unsigned worker_count() {
  if (const char* env = std::getenv("GOST_WORKERS")) {
    int n = std::atoi(env);
    if (n > 0 && n <= 256) return static_cast<unsigned>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

config::Config build_config(const app::Flags& flags) {
  config::Config cfg;
  for (const auto& src : flags.configs) cfg.merge(config::load_source(src));
  cfg.merge(config::parse_command_line(flags.services, flags.nodes));
  // The default file is looked for only when nothing else says what to run (docs/PROTOCOLS.md
  // "cli: flags").
  if (cfg.services.empty() && flags.configs.empty() && flags.api.empty() && !cfg.api) {
    auto path = config::find_default_config();
    if (!path) {
      const char* home = std::getenv("HOME");
      char cwd[4096] = ".";
      if (!getcwd(cwd, sizeof cwd)) cwd[0] = '.', cwd[1] = 0;
      throw config::ConfigError(fmt::format(
          "Config File \"gost\" Not Found in \"[/etc/gost {}/.gost {}]\"", home ? home : "", cwd));
    }
    cfg = config::load_source(*path);
  }
  if (const char* lvl = std::getenv("GOST_LOGGER_LEVEL")) {
    if (!cfg.log) cfg.log = config::Log{};
    cfg.log->level = lvl;
  }
  // GOST 3.2.6 replaces the whole api and metrics sections with {addr} (docs/PROTOCOLS.md
  // "observability: metrics", "observability: web API").
  if (const char* addr = std::getenv("GOST_API"); addr && *addr) {
    cfg.api = config::Api{};
    cfg.api->addr = addr;
  }
  if (const char* addr = std::getenv("GOST_METRICS"); addr && *addr) {
    cfg.metrics = config::Metrics{};
    cfg.metrics->addr = addr;
  }
  if (flags.debug || flags.trace) {
    if (!cfg.log) cfg.log = config::Log{};
    cfg.log->level = flags.trace ? "trace" : "debug";
  }
  if (!flags.api.empty()) cfg.api = config::parse_api_flag(flags.api);
  if (!flags.metrics.empty()) cfg.metrics = config::parse_metrics_flag(flags.metrics);
  return cfg;
}

// -R: a Go duration ("30s"); 0 = off; under a second → one second, as GOST's reloaders.
std::chrono::nanoseconds reload_period(const std::string& value) {
  if (value.empty()) return {};
  auto d = config::parse_go_duration(value);
  if (!d || d->count() < 0)
    throw config::ConfigError(fmt::format("-R: invalid duration \"{}\"", value));
  if (d->count() == 0) return {};
  return std::max<std::chrono::nanoseconds>(*d, std::chrono::seconds(1));
}

// The one -C file a reload re-reads and the API saves to (none for stdin or inline JSON).
std::string config_file(const app::Flags& flags) {
  if (flags.configs.size() != 1) return {};
  const auto& c = flags.configs.front();
  if (c == "-" || c.starts_with("{")) return {};
  return c;
}

void reject_unsupported_flags(const app::Flags& flags, const std::vector<std::string>& args) {
  if (std::getenv("GOST_PROFILING"))
    throw config::ConfigError("GOST_PROFILING is not supported by this implementation");
  for (const auto& a : args)
    if (a == "--")
      throw config::ConfigError(
          "multi-process mode (\" -- \") is not supported by this implementation");
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists; Program::run() waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  memory::tune_allocator();

  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = app::parse_flags(args);
  if (auto* err = std::get_if<app::FlagError>(&parsed)) {
    std::fprintf(stderr, "%s\n%s", err->message.c_str(), app::usage_text().c_str());
    return 2;
  }
  const auto& flags = std::get<app::Flags>(parsed);
  if (flags.help) {
    // To stdout (GOST, like any Go program, writes it to stderr) so that `gost -h | less` works.
    std::fputs(app::usage_text().c_str(), stdout);
    return 0;
  }
  if (flags.version) {
    std::printf("gost %s (C++ g++%d linux/amd64)\n", GOST_VERSION, __GNUC__);
    return 0;
  }
  try {
    reject_unsupported_flags(flags, args);
    auto cfg = build_config(flags);
    if (!flags.output.empty()) {
      std::string out = flags.output == "json" ? config::to_json(cfg) : config::to_yaml(cfg);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    }
    log::configure(cfg.log, cfg.loggers);
    raise_fd_limit();
    app::ProgramOptions options;
    options.workers = worker_count();
    options.load = [&flags] { return build_config(flags); };
    options.config_file = config_file(flags);
    options.reload_period = reload_period(flags.reload);
    app::Program program(cfg, std::move(options));
    program.run();
    std::fflush(stderr);
    std::_Exit(0);  // connections still open are dropped by the kernel; no teardown races
  } catch (const config::UnknownSchemeError& e) {
    fatal(e.service
              ? fmt::format("{} (handlers: {}; listeners: {})", e.what(),
                            registry_names<HandlerRegistry>(), registry_names<ListenerRegistry>())
              : fmt::format("{} (connectors: {}; dialers: {})", e.what(),
                            registry_names<ConnectorRegistry>(), registry_names<DialerRegistry>()));
  } catch (const std::exception& e) {
    fatal(error_text(e));
  }
  std::fflush(stderr);
  std::_Exit(0);
}
