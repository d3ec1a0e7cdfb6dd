// The small HTTP/1.1 server (Boost.Beast) behind the global endpoints `@metrics` and `@api`
// (docs/PROTOCOLS.md "observability: metrics", "observability: web API"): its own thread, so that a
// scrape or an API call never runs on a worker; bounded heads and bodies, read/write timeouts, a
// bounded number of connections, keep-alive, Go's plain-text replies to requests that do not parse.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <memory>
#include <string>

namespace gost::app {

class HttpServer {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  // Answers one request; `remote` is the client's "ip:port". Runs on the server's thread.
  using Responder = std::function<Response(const Request&, const std::string& remote)>;

  // Binds `addr` now (throws system_error / ConfigError). `name` ("@metrics") is the service
  // name in its logs.
  HttpServer(const std::string& addr, const std::string& name, std::uint64_t body_limit,
             Responder responder);
  ~HttpServer();
  void start();
  void stop();
  std::string bound_address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The path of a request-target (origin or absolute form), without the query.
std::string_view target_path(std::string_view target);
// The Basic credentials of a request ("", "" when there are none).
std::pair<std::string, std::string> basic_credentials(const HttpServer::Request& req);

}  // namespace gost::app
