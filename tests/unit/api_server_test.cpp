// The web API's envelopes, codes and auth (docs/PROTOCOLS.md "observability: web API"), in process:
// an ApiServer over a Runtime with no services, driven with plain HTTP/1.1 on loopback.
#include "app/api_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <stdexcept>
#include <string>

#include "app/runtime.hpp"

namespace gost::app {
namespace {

// One request on a new connection; the whole response (head and body) as text.
std::string exchange(const std::string& address, const std::string& request) {
  boost::asio::io_context ctx;
  boost::asio::ip::tcp::socket s(ctx);
  auto port = static_cast<unsigned short>(std::stoi(address.substr(address.rfind(':') + 1)));
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::asio::write(s, boost::asio::buffer(request));
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    auto n = s.read_some(boost::asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

std::string call(ApiServer& api, const std::string& method, const std::string& path,
                 const std::string& body = {}, const std::string& auth = "YWRtaW46c2VjcmV0") {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  if (!auth.empty()) req += "Authorization: Basic " + auth + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return exchange(api.bound_address(), req);
}

std::string body_of(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}
std::string status_of(const std::string& response) { return response.substr(9, 3); }

class ApiServerTest : public ::testing::Test {
 protected:
  ApiServerTest() : runtime_({}) {
    runtime_.apply(config::Config{});
    config::Api cfg{.addr = "127.0.0.1:0", .auth = config::Auth{"admin", "secret", ""}};
    api_ = std::make_unique<ApiServer>(cfg, runtime_, ApiServer::Hooks{.reload = [] {
                                         throw std::runtime_error("reload failed: nope");
                                       }});
    api_->start();
  }
  ~ApiServerTest() override { api_->stop(); }

  Runtime runtime_;
  std::unique_ptr<ApiServer> api_;
};

TEST_F(ApiServerTest, Envelopes) {
  auto r = call(*api_, "GET", "/config/authers");
  EXPECT_EQ(status_of(r), "200");
  EXPECT_NE(r.find("Content-Type: application/json; charset=utf-8"), std::string::npos);
  EXPECT_EQ(body_of(r), R"({"data":{"count":0,"list":null}})");
  r = call(*api_, "POST", "/config/authers",
           R"({"name":"a1","auths":[{"username":"u","password":"p"}]})");
  EXPECT_EQ(body_of(r), R"({"msg":"OK"})");
  EXPECT_EQ(
      body_of(call(*api_, "GET", "/config/authers")),
      R"({"data":{"count":1,"list":[{"name":"a1","auths":[{"username":"u","password":"p"}]}]}})");
  EXPECT_EQ(body_of(call(*api_, "GET", "/config/authers/a1")),
            R"({"data":{"name":"a1","auths":[{"username":"u","password":"p"}]}})");
  EXPECT_EQ(body_of(call(*api_, "GET", "/config/authers/nope")), "{}");
  r = call(*api_, "POST", "/config/authers", R"({"name":"a1"})");
  EXPECT_EQ(status_of(r), "400");
  EXPECT_EQ(body_of(r), R"({"code":40002,"msg":"auther a1 already exists"})");
  r = call(*api_, "POST", "/config/authers", R"({"name":"  "})");
  EXPECT_EQ(body_of(r), R"({"code":40001,"msg":"auther name is required"})");
  r = call(*api_, "DELETE", "/config/hops/nope");
  EXPECT_EQ(body_of(r), R"({"code":40004,"msg":"hop nope not found"})");
  r = call(*api_, "PUT", "/config/authers/a1", R"({"name":"other","auths":[]})");
  EXPECT_EQ(body_of(r), R"({"msg":"OK"})");
  EXPECT_EQ(body_of(call(*api_, "GET", "/config/authers")),
            R"({"data":{"count":1,"list":[{"name":"a1"}]}})");
  EXPECT_EQ(body_of(call(*api_, "DELETE", "/config/authers/a1")), R"({"msg":"OK"})");
  r = call(*api_, "POST", "/config/reload");
  EXPECT_EQ(status_of(r), "400");
  EXPECT_EQ(body_of(r), R"({"code":40001,"msg":"reload failed: nope"})");
  EXPECT_EQ(status_of(call(*api_, "GET", "/nothing")), "404");
  EXPECT_EQ(status_of(call(*api_, "PATCH", "/config/authers/a1")), "404");
}

TEST_F(ApiServerTest, AuthOnEveryRequest) {
  for (const char* auth : {"", "YWRtaW46d3Jvbmc=", "bm9ib2R5OnNlY3JldA=="}) {
    auto r = call(*api_, "GET", "/config", {}, auth);
    EXPECT_EQ(status_of(r), "401") << auth;
    EXPECT_NE(r.find("WWW-Authenticate: Basic"), std::string::npos);
    EXPECT_EQ(body_of(r), R"({"code":401,"msg":"Unauthorized"})");
  }
  // Nothing was created by an unauthenticated request.
  call(*api_, "POST", "/config/authers", R"({"name":"x"})", "");
  EXPECT_EQ(body_of(call(*api_, "GET", "/config/authers")), R"({"data":{"count":0,"list":null}})");
}

}  // namespace
}  // namespace gost::app
