#include "app/api_server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "app/http_server.hpp"
#include "config/go_text.hpp"
#include "config/loader.hpp"
#include "config/printer.hpp"
#include "config/url_parser.hpp"
#include "core/auth.hpp"
#include "core/log.hpp"

namespace gost::app {
namespace {

namespace bhttp = boost::beast::http;
using Request = HttpServer::Request;
using Response = HttpServer::Response;

// A request body is one configuration object; 1 MiB is far beyond any real one.
constexpr std::uint64_t kBodyLimit = 1024 * 1024;

// An API error: HTTP status, GOST's code and message (docs/PROTOCOLS.md "observability: web API").
struct ApiError {
  bhttp::status status;
  int code;
  std::string msg;
};

ApiError bad_request(int code, std::string msg) {
  return {bhttp::status::bad_request, code, std::move(msg)};
}

// The collections this implementation has objects for, with GOST's words for them.
#define GOST_API_COLLECTION(Name, T, word, field, loader)                 \
  struct Name {                                                           \
    using Type = config::T;                                               \
    static constexpr const char* kind = word;                             \
    static auto& list(config::Config& c) { return c.field; }              \
    static config::T load(std::string_view body) { return loader(body); } \
  };
GOST_API_COLLECTION(Services, Service, "service", services, config::load_service_object)
GOST_API_COLLECTION(Chains, Chain, "chain", chains, config::load_chain_object)
GOST_API_COLLECTION(Hops, Hop, "hop", hops, config::load_hop_object)
GOST_API_COLLECTION(Authers, Auther, "auther", authers, config::load_auther_object)
GOST_API_COLLECTION(Admissions, Admission, "admission", admissions, config::load_admission_object)
GOST_API_COLLECTION(Bypasses, Bypass, "bypass", bypasses, config::load_bypass_object)
GOST_API_COLLECTION(HostsList, Hosts, "hosts", hosts, config::load_hosts_object)
GOST_API_COLLECTION(Limiters, Limiter, "limiter", limiters, config::load_limiter_object)
GOST_API_COLLECTION(CLimiters, Limiter, "climiter", climiters, config::load_limiter_object)
GOST_API_COLLECTION(RLimiters, Limiter, "rlimiter", rlimiters, config::load_limiter_object)
#undef GOST_API_COLLECTION

// GOST's other collections: objects this implementation does not have. Reading them shows none;
// creating one is refused with a message that says so.
constexpr std::string_view kUnsupported[] = {"resolvers", "ingresses", "routers",
                                             "observers", "recorders", "sds"};

// The value of `key` in the query of a request-target ("" when absent).
std::string query_value(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  for (auto& [k, v] : config::parse_query(target.substr(q + 1)))
    if (k == key) return v.as_string();
  return {};
}

}  // namespace

struct ApiServer::Impl {
  config::Api api;
  Runtime& runtime;
  Hooks hooks;
  std::string prefix;
  log::Logger log;
  std::unique_ptr<HttpServer> server;

  Impl(config::Api a, Runtime& r, Hooks h) : api(std::move(a)), runtime(r), hooks(std::move(h)) {
    prefix = api.pathPrefix;
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty() && prefix.front() != '/') prefix.insert(prefix.begin(), '/');
    log = log::root().with({{"kind", "service"}, {"service", "@api"}});
  }

  // GOST's group of the `auth` user and the named `auther`: either may let a request in. The
  // auther is the running one of that name, as the services use it (inline users, sources or
  // plugin: Runtime::authenticate), so a change through the API or a reload applies at once.
  // Unlike GOST, an auther name that is not defined lets nobody in through it (GOST: everyone).
  bool authorized(const Request& req, const std::string& remote) const {
    bool inline_user = api.auth && !api.auth->username.empty();
    if (!inline_user && api.auther.empty()) return true;
    auto [user, pass] = basic_credentials(req);
    if (user.empty() && pass.empty()) return false;
    if (inline_user && user == api.auth->username && pass == api.auth->password) return true;
    if (!api.auther.empty())
      return runtime.authenticate(api.auther, user, pass, "@api", remote).value_or(false);
    return false;
  }

  static Response json(const Request& req, bhttp::status status, std::string body) {
    Response res{status, req.version()};
    res.set(bhttp::field::content_type, "application/json; charset=utf-8");
    res.body() = std::move(body);
    return res;
  }
  static Response error(const Request& req, const ApiError& e) {
    return json(req, e.status,
                fmt::format("{{\"code\":{},\"msg\":{}}}", e.code, config::json_quote(e.msg)));
  }
  static Response ok(const Request& req) { return json(req, bhttp::status::ok, R"({"msg":"OK"})"); }
  static Response not_found(const Request& req) {
    Response res{bhttp::status::not_found, req.version()};
    res.set(bhttp::field::content_type, "text/plain");
    res.body() = "404 page not found";
    return res;
  }

  // The running configuration with each service's status (docs/PROTOCOLS.md
  // "observability: web API").
  config::Config snapshot() const {
    auto cfg = runtime.config();
    auto status = runtime.status();
    for (auto& s : cfg.services) {
      auto it = std::find_if(status.begin(), status.end(),
                             [&](const auto& x) { return x.name == s.name; });
      if (it == status.end()) continue;
      config::ServiceStatus st;
      st.createTime = it->created;
      st.state = "running";
      st.events.emplace_back(it->created,
                             fmt::format("service {} is listening on {}", s.name, it->address));
      s.status = std::move(st);
    }
    return cfg;
  }

  template <class C>
  Response collection(const Request& req, const std::string& name) {
    using T = typename C::Type;
    const std::string kind = C::kind;
    auto method = req.method();
    if (method == bhttp::verb::get) {
      auto cfg = snapshot();
      auto& list = C::list(cfg);
      if (!name.empty()) {
        for (const auto& x : list)
          if (x.name == name)
            return json(req, bhttp::status::ok, "{\"data\":" + config::to_compact_json(x) + "}");
        return json(req, bhttp::status::ok, "{}");
      }
      std::string items;
      for (const auto& x : list) items += (items.empty() ? "" : ",") + config::to_compact_json(x);
      return json(req, bhttp::status::ok,
                  fmt::format("{{\"data\":{{\"count\":{},\"list\":{}}}}}", list.size(),
                              list.empty() ? std::string("null") : "[" + items + "]"));
    }
    if (method != bhttp::verb::post && method != bhttp::verb::put && method != bhttp::verb::delete_)
      return not_found(req);
    if (method == bhttp::verb::post && !name.empty()) return not_found(req);
    if (method != bhttp::verb::post && name.empty()) return not_found(req);
    const char* verb = method == bhttp::verb::post  ? "create"
                       : method == bhttp::verb::put ? "update"
                                                    : "delete";
    std::string target = name;
    try {
      std::optional<T> object;
      if (method != bhttp::verb::delete_) {
        try {
          object = C::load(req.body());
        } catch (const config::ConfigError& e) {
          throw bad_request(40001, e.what());
        }
        if (method == bhttp::verb::put) object->name = name;
        object->name = config::detail::trim_space(object->name);
        target = object->name;
        if (target.empty()) throw bad_request(40001, kind + " name is required");
      }
      runtime.update([&](config::Config& cfg) {
        auto& list = C::list(cfg);
        auto it =
            std::find_if(list.begin(), list.end(), [&](const T& x) { return x.name == target; });
        if (method == bhttp::verb::post) {
          if (it != list.end())
            throw bad_request(40002, fmt::format("{} {} already exists", kind, target));
          list.push_back(std::move(*object));
        } else if (it == list.end()) {
          throw bad_request(40004, fmt::format("{} {} not found", kind, target));
        } else if (method == bhttp::verb::put) {
          *it = std::move(*object);
        } else {
          list.erase(it);
        }
      });
    } catch (const ApiError& e) {
      return error(req, e);
    } catch (const std::exception& e) {
      return error(req, {bhttp::status::internal_server_error, 40003,
                         fmt::format("{} {} {} failed: {}", verb, kind, target, error_text(e))});
    }
    return ok(req);
  }

  Response whole_config(const Request& req, std::string_view target) {
    std::string format = query_value(target, "format");
    if (req.method() == bhttp::verb::get) {
      auto cfg = snapshot();
      Response res{bhttp::status::ok, req.version()};
      if (format == "yaml") {
        res.set(bhttp::field::content_type, "text/x-yaml; charset=utf-8");
        res.body() = config::to_yaml(cfg);
      } else {
        res.set(bhttp::field::content_type, "application/json; charset=utf-8");
        res.body() = config::to_json(cfg);
      }
      return res;
    }
    if (req.method() != bhttp::verb::post) return not_found(req);
    // Save: to `path`, else to the -C file (GOST's development head; go-gost/gost#253), else to
    // gost.yaml / gost.json in the working directory (3.2.6).
    std::string path = query_value(target, "path");
    if (path.empty()) path = hooks.config_file;
    if (format.empty() && (path.ends_with(".json"))) format = "json";
    if (path.empty()) path = format == "json" ? "gost.json" : "gost.yaml";
    auto cfg = runtime.config();
    std::string text = format == "json" ? config::to_json(cfg) : config::to_yaml(cfg);
    // Written beside and renamed over: a failed write never leaves half a configuration.
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out)
        return error(req, {bhttp::status::internal_server_error, 40005,
                           fmt::format("create file: open {}: {}", path, std::strerror(errno))});
      out << text;
      out.close();
      if (!out)
        return error(req, {bhttp::status::internal_server_error, 40005,
                           fmt::format("save config: write {} failed", tmp)});
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      return error(req, {bhttp::status::internal_server_error, 40005,
                         fmt::format("save config: rename {}: {}", path, std::strerror(errno))});
    }
    return ok(req);
  }

  Response route(const Request& req, std::string_view path, std::string_view target,
                 const std::string& remote) {
    if (!path.starts_with(prefix)) return not_found(req);
    path.remove_prefix(prefix.size());
    if (path != "/config" && !path.starts_with("/config/")) return not_found(req);
    // Routes exist for these methods only; auth runs for routes (gin: group middleware).
    auto m = req.method();
    if (m != bhttp::verb::get && m != bhttp::verb::post && m != bhttp::verb::put &&
        m != bhttp::verb::delete_)
      return not_found(req);
    if (!authorized(req, remote)) {
      auto res = json(req, bhttp::status::unauthorized, R"({"code":401,"msg":"Unauthorized"})");
      res.set(bhttp::field::www_authenticate, "Basic");
      return res;
    }
    if (path == "/config") return whole_config(req, target);
    std::string_view rest = path.substr(8);  // after "/config/"
    if (rest == "reload") {
      if (req.method() != bhttp::verb::post) return not_found(req);
      try {
        hooks.reload();
      } catch (const std::exception& e) {
        return error(req, bad_request(40001, error_text(e)));
      }
      return ok(req);
    }
    auto slash = rest.find('/');
    std::string coll(rest.substr(0, slash));
    std::string name =
        slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash + 1));
    if (name.find('/') != std::string::npos) return not_found(req);
    if (coll == "services") return collection<Services>(req, name);
    if (coll == "chains") return collection<Chains>(req, name);
    if (coll == "hops") return collection<Hops>(req, name);
    if (coll == "authers") return collection<Authers>(req, name);
    if (coll == "admissions") return collection<Admissions>(req, name);
    if (coll == "bypasses") return collection<Bypasses>(req, name);
    if (coll == "hosts") return collection<HostsList>(req, name);
    if (coll == "limiters") return collection<Limiters>(req, name);
    if (coll == "climiters") return collection<CLimiters>(req, name);
    if (coll == "rlimiters") return collection<RLimiters>(req, name);
    if (std::find(std::begin(kUnsupported), std::end(kUnsupported), coll) !=
        std::end(kUnsupported)) {
      if (req.method() == bhttp::verb::get)
        return json(req, bhttp::status::ok,
                    name.empty() ? R"({"data":{"count":0,"list":null}})" : "{}");
      return error(
          req,
          bad_request(40001, fmt::format("{} are not supported by this implementation", coll)));
    }
    return not_found(req);
  }

  Response respond(const Request& req, const std::string& remote) {
    auto start = std::chrono::steady_clock::now();
    std::string target(req.target());
    std::string path(target_path(target));
    // CORS (gin-contrib/cors, allow all): only for a cross-origin request.
    bool cors = false;
    if (auto origin = req.find(bhttp::field::origin); origin != req.end()) {
      std::string host(req[bhttp::field::host]);
      std::string o(origin->value());
      cors = o != "http://" + host && o != "https://" + host;
    }
    Response res;
    if (cors && req.method() == bhttp::verb::options) {
      res = Response{bhttp::status::no_content, req.version()};
      res.set("Access-Control-Allow-Methods", "GET,POST,PUT,DELETE,OPTIONS");
      res.set("Access-Control-Allow-Headers", "*");
      res.set("Access-Control-Allow-Private-Network", "true");
    } else if (path.size() > 1 && path.back() == '/') {
      // Go's router: a trailing slash is redirected to the route without it.
      res = Response{req.method() == bhttp::verb::get ? bhttp::status::moved_permanently
                                                      : bhttp::status::temporary_redirect,
                     req.version()};
      res.set(bhttp::field::location, path.substr(0, path.size() - 1));
    } else {
      res = route(req, path, target, remote);
    }
    if (cors) res.set("Access-Control-Allow-Origin", "*");
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    if (api.accesslog) {
      auto d = std::chrono::steady_clock::now() - start;
      std::string client = remote.substr(0, remote.rfind(':'));
      if (client.size() > 1 && client.front() == '[') client = client.substr(1, client.size() - 2);
      std::string method(req.method_string());
      log::root()
          .with({{"kind", "api"}})
          .info(
              fmt::format("| {:3d} | {:>13} | {:>15} | {:<7} {}", res.result_int(),
                          config::format_go_duration(d), client, method, target),
              {{"method", method},
               {"uri", target},
               {"code", static_cast<std::int64_t>(res.result_int())},
               {"client", client},
               {"duration", static_cast<std::int64_t>(
                                std::chrono::duration_cast<std::chrono::nanoseconds>(d).count())}});
    }
    return res;
  }
};

ApiServer::ApiServer(const config::Api& api, Runtime& runtime, Hooks hooks)
    : impl_(new Impl(api, runtime, std::move(hooks))) {
  if (!api.auther.empty()) {
    auto cfg = runtime.config();
    bool defined = std::any_of(cfg.authers.begin(), cfg.authers.end(),
                               [&](const auto& a) { return a.name == api.auther; });
    if (!defined)
      impl_->log.warn(fmt::format("api: auther \"{}\" is not defined: nobody is let in through it",
                                  api.auther));
  }
  // An empty address listens on an ephemeral port (docs/PROTOCOLS.md "observability: web API").
  std::string addr = api.addr.empty() ? std::string(":0") : api.addr;
  impl_->server = std::make_unique<HttpServer>(
      addr, "@api", kBodyLimit, [im = impl_.get()](const Request& req, const std::string& remote) {
        try {
          return im->respond(req, remote);
        } catch (const std::exception& e) {  // gin's recovery: 500, the server stays up
          Response res{bhttp::status::internal_server_error, req.version()};
          res.prepare_payload();
          return res;
        }
      });
  impl_->log.info(fmt::format("listening on {}", impl_->server->bound_address()));
}

ApiServer::~ApiServer() { stop(); }
void ApiServer::start() { impl_->server->start(); }
void ApiServer::stop() { impl_->server->stop(); }
std::string ApiServer::bound_address() const { return impl_->server->bound_address(); }

}  // namespace gost::app
