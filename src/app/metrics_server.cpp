#include "app/metrics_server.hpp"

#include "app/http_server.hpp"

namespace gost::app {
namespace {

namespace bhttp = boost::beast::http;

// Prometheus sends a GET with a few headers; a body is never needed.
constexpr std::uint64_t kBodyLimit = 64 * 1024;

}  // namespace

struct MetricsServer::Impl {
  metrics::Registry& registry;
  std::string path;
  Checker auth;
  std::unique_ptr<HttpServer> server;

  Impl(metrics::Registry& r, std::string p, Checker a)
      : registry(r), path(p.empty() ? "/metrics" : std::move(p)), auth(std::move(a)) {}

  bool path_matches(std::string_view p) const {
    if (path.back() == '/') return p.substr(0, path.size()) == path;  // ServeMux subtree
    return p == path;
  }

  bool authorized(const HttpServer::Request& req, const std::string& remote) const {
    if (!auth) return true;
    auto [user, pass] = basic_credentials(req);
    if (user.empty() && pass.empty()) return false;
    return auth(user, pass, remote);
  }

  HttpServer::Response respond(const HttpServer::Request& req, const std::string& remote) {
    HttpServer::Response res{bhttp::status::ok, req.version()};
    auto target = req.target();
    if (!path_matches(target_path(std::string_view(target.data(), target.size())))) {
      res.result(bhttp::status::not_found);
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.set("X-Content-Type-Options", "nosniff");
      res.body() = "404 page not found\n";
    } else if (!authorized(req, remote)) {
      res.result(bhttp::status::unauthorized);  // GOST: no WWW-Authenticate, empty body
    } else {
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = registry.exposition();
      res.chunked(true);
    }
    res.keep_alive(req.keep_alive());
    if (!res.chunked()) res.prepare_payload();
    return res;
  }
};

MetricsServer::MetricsServer(metrics::Registry& registry, const std::string& addr, std::string path,
                             Checker auth)
    : impl_(new Impl(registry, std::move(path), std::move(auth))) {
  impl_->server = std::make_unique<HttpServer>(
      addr, "@metrics", kBodyLimit,
      [im = impl_.get()](const HttpServer::Request& req, const std::string& remote) {
        return im->respond(req, remote);
      });
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() { impl_->server->start(); }

void MetricsServer::stop() { impl_->server->stop(); }

std::string MetricsServer::bound_address() const { return impl_->server->bound_address(); }

}  // namespace gost::app
