#include "net/pht_h3.hpp"

#include <fmt/format.h>

#include "net/session_pool.hpp"
#include "proto/pht.hpp"

namespace gost::net::pht {
namespace codec = proto::pht;

namespace {

// A request body read or a reply write that makes no progress for this long ends the request
// (as net/pht_http1's 30 s).
constexpr auto kIoTimeout = std::chrono::seconds(30);

quic::Headers response_head(int status) {
  return {{":status", std::to_string(status)}, {"date", codec::current_http_date()}};
}

class H3Exchange final : public ServerExchange {
 public:
  explicit H3Exchange(std::shared_ptr<quic::RequestStream> st) : st_(std::move(st)) {}

  std::string_view method() const override { return h2_header(st_->head(), ":method"); }
  std::string_view target() const override { return h2_header(st_->head(), ":path"); }
  std::string remote_address() const override { return st_->remote_address(); }
  std::string local_address() const override { return st_->local_address(); }

  awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) override {
    co_await st_->read(out, max, kIoTimeout, ec);
  }

  awaitable<void> reply(int status, error_code& ec) override { co_await st_->reply(status, ec); }

  awaitable<void> reply_authorize(std::string_view token, error_code& ec) override {
    std::string body = codec::authorize_body(token);
    auto head = response_head(200);
    head.push_back({"content-length", std::to_string(body.size())});
    head.push_back({"content-type", "text/plain; charset=utf-8"});
    co_await complete(std::move(head), std::move(body), ec);
  }

  awaitable<void> start_pull(error_code& ec) override {
    auto head = response_head(200);
    head.insert(head.begin() + 1, {"x-accel-buffering", "no"});
    st_->respond(head, ec);
    co_return;
  }

  awaitable<void> send_lines(const std::vector<std::string>& raw, error_code& ec) override {
    std::string wire;
    std::size_t size = 0;
    for (const auto& r : raw) size += r.size() / 3 * 4 + 8;
    wire.reserve(size);
    for (const auto& r : raw) codec::append_pull_line(wire, r);
    co_await st_->write(std::move(wire), ec);
  }

  awaitable<void> end_pull(error_code& ec) override {
    st_->finish();
    co_return;
  }

  void watch_client(std::function<void()> gone) override { st_->on_gone(std::move(gone)); }

 private:
  awaitable<void> complete(quic::Headers head, std::string body, error_code& ec) {
    st_->respond(head, ec);
    if (ec) co_return;
    if (!body.empty()) co_await st_->write(std::move(body), ec);
    st_->finish();
  }

  std::shared_ptr<quic::RequestStream> st_;
};

}  // namespace

awaitable<void> serve_h3(std::shared_ptr<quic::RequestStream> stream,
                         std::shared_ptr<PhtServer> server, log::Logger log) {
  try {
    H3Exchange ex(stream);
    co_await server->serve(ex);
  } catch (const std::exception& e) {
    log.debug(fmt::format("h3: request from {}: {}", stream->remote_address(), error_text(e)));
    stream->reset();
  }
}

// ---- client -----------------------------------------------------------------------------------

namespace {

class H3Client;

class H3Request final : public ClientRequest {
 public:
  H3Request(std::shared_ptr<H3Client> client, std::string_view method, std::string target,
            std::optional<std::string> body, RequestLimits limits)
      : client_(std::move(client)),
        method_(method),
        target_(std::move(target)),
        body_(std::move(body)),
        limits_(limits) {}
  ~H3Request() override {
    if (stream_ && !done_) stream_->reset();
  }

  awaitable<void> send(error_code& ec) override;
  int status() const override { return status_; }

  awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) override {
    if (!stream_ || aborted_) {
      ec = asio::error::operation_aborted;
      co_return;
    }
    co_await stream_->read(out, max, limits_.body_idle, ec);
    if (ec == asio::error::eof) done_ = true;
  }

  void abort() override {
    aborted_ = true;
    if (stream_ && !done_) stream_->reset();
    done_ = true;
  }

 private:
  std::shared_ptr<H3Client> client_;
  std::string method_, target_;
  std::optional<std::string> body_;
  RequestLimits limits_;
  std::shared_ptr<quic::RequestStream> stream_;
  int status_ = 0;
  bool done_ = false;
  bool aborted_ = false;
};

class H3Client final : public ClientCarrier, public std::enable_shared_from_this<H3Client> {
 public:
  // A burst of tunnels opens connections a few at a time (a server lets a connection carry 100
  // requests at once by default, GOST's maxStreams as ours; a tunnel holds its pull's and, while
  // it pushes, a push's), and the connections it left behind close 2–3 s after their last
  // request but the oldest of each worker (issue 16: 188 UDP sockets stayed after 9,000 tunnels;
  // closed before the memory follow-up at 4 s, a burst's client is back within 2× idle in 3 s).
  H3Client(H3ClientConfig cfg, log::Logger log)
      : cfg_(std::move(cfg)),
        log_(std::move(log)),
        pool_(spare_reaping<quic::ClientSession>(std::chrono::seconds(2), 50)) {}

  std::shared_ptr<ClientRequest> request(std::string_view method, std::string target,
                                         std::optional<std::string> body,
                                         RequestLimits limits) override {
    return std::make_shared<H3Request>(shared_from_this(), method, std::move(target),
                                       std::move(body), limits);
  }

  // A session of this worker that can take a request now (a new connection when none can).
  awaitable<std::shared_ptr<quic::ClientSession>> session() {
    return pool_.get([](const quic::ClientSession& s) { return s.closing(); },
                     [](const quic::ClientSession& s) { return s.usable(); },
                     [this]() -> awaitable<std::shared_ptr<quic::ClientSession>> {
                       co_return co_await quic::connect(cfg_.node_addr, cfg_.tls, cfg_.quic, log_);
                     });
  }

  quic::Headers head(std::string_view method, const std::string& target,
                     const std::optional<std::string>& body) const {
    quic::Headers h{{":method", std::string(method)},
                    {":scheme", "https"},
                    {":authority", cfg_.authority},
                    {":path", target},
                    {"user-agent", "quic-go HTTP/3"}};
    if (body) h.push_back({"content-length", std::to_string(body->size())});
    return h;
  }

  const log::Logger& log() const { return log_; }

 private:
  H3ClientConfig cfg_;
  log::Logger log_;
  SessionPool<quic::ClientSession> pool_;
};

awaitable<void> H3Request::send(error_code& ec) {
  ec = {};
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::shared_ptr<quic::ClientSession> session;
    try {
      session = co_await client_->session();
    } catch (const system_error& e) {
      ec = e.code();
      co_return;
    }
    error_code oec;
    stream_ = session->open(client_->head(method_, target_, body_), body_.has_value(), oec);
    if (!stream_) {
      // No stream credit left (a race with another request) or closing: another session.
      if (oec == asio::error::connection_refused || oec == asio::error::connection_aborted)
        continue;
      ec = oec;
      co_return;
    }
    if (body_) {
      co_await stream_->write(std::move(*body_), ec);
      body_.reset();
      if (ec) co_return;
      stream_->finish();
    }
    co_await stream_->wait_head(limits_.head_timeout, ec);
    if (ec == asio::error::timed_out) {
      // A server that does not answer in time is taken for dead (a lost server sends nothing):
      // the next request connects anew.
      session->close();
    }
    if (ec) co_return;
    auto status = h2_header(stream_->head(), ":status");
    status_ = 0;
    for (char c : status) status_ = status_ * 10 + (c - '0');
    co_return;
  }
  ec = asio::error::connection_aborted;
}

}  // namespace

std::shared_ptr<ClientCarrier> make_h3_client(H3ClientConfig cfg, log::Logger log) {
  return std::make_shared<H3Client>(std::move(cfg), std::move(log));
}

}  // namespace gost::net::pht
