#include "net/masque.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <deque>
#include <map>

#include "net/session_pool.hpp"
#include "net/udp.hpp"
#include "proto/masque.hpp"

namespace gost::net::masque {

namespace codec = proto::masque;

// ---- datagram flows ---------------------------------------------------------------------------

namespace {

class DatagramFlow final : public Stream, public PacketConn {
 public:
  DatagramFlow(std::shared_ptr<quic::RequestStream> st, std::string peer)
      : st_(std::move(st)), peer_(std::move(peer)) {
    st_->accept_datagrams();
  }
  ~DatagramFlow() override {
    if (!st_->done()) st_->reset();
  }

  asio::any_io_executor executor() override { return st_->executor(); }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    ec = {};
    for (;;) {
      std::optional<std::string> d = st_->take_datagram();
      if (!d) d = capsules_.next();
      if (d) {
        auto payload = codec::udp_payload(*d);
        if (!payload) continue;  // another context ID: not ours (RFC 9298 §4)
        std::size_t n = std::min(buf.size(), payload->size());
        std::memcpy(buf.data(), payload->data(), n);
        co_return n;
      }
      if (capsules_.bad()) {
        ec = asio::error::invalid_argument;  // the peer broke the capsule protocol
        co_return 0;
      }
      co_await st_->wait_readable(ec);
      if (ec) co_return 0;
      if (!st_->body_ready()) continue;  // a datagram came
      std::size_t got = co_await st_->read_some(asio::buffer(chunk_), ec);
      if (ec && ec != asio::error::would_block) co_return 0;  // eof (the flow ended) or reset
      ec = {};
      capsules_.feed(std::string_view(chunk_.data(), got));
    }
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = {};
    auto d =
        codec::udp_datagram(std::string_view(static_cast<const char*>(buf.data()), buf.size()));
    if (!st_->send_datagram(d)) co_await st_->write(codec::datagram_capsule(d), ec);
    co_return ec ? 0 : buf.size();
  }

  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    auto n = co_await read_some(buf, ec);
    addr = peer_;
    co_return n;
  }
  awaitable<void> write_to(asio::const_buffer buf, std::string_view, error_code& ec) override {
    co_await write_some(buf, ec);
  }
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    st_->finish();
    co_return;
  }
  void close() override { st_->reset(); }
  std::string remote_address() const override { return st_->remote_address(); }
  std::string local_address() const override { return st_->local_address(); }

 private:
  std::shared_ptr<quic::RequestStream> st_;
  std::string peer_;
  codec::CapsuleReader capsules_;
  std::array<char, 16384> chunk_;
};

}  // namespace

StreamPtr datagram_flow(std::shared_ptr<quic::RequestStream> st, std::string peer) {
  return std::make_unique<DatagramFlow>(std::move(st), std::move(peer));
}

// ---- client -----------------------------------------------------------------------------------

struct Client::Impl {
  Impl(ClientConfig c, log::Logger l)
      : cfg(std::move(c)),
        log(std::move(l)),
        pool(spare_reaping<quic::ClientSession>(kSpareIdle, 50)) {}
  ClientConfig cfg;
  log::Logger log;
  SessionPool<quic::ClientSession> pool;
};

Client::Client(ClientConfig cfg, log::Logger log)
    : impl_(std::make_shared<Impl>(std::move(cfg), std::move(log))) {}
Client::~Client() = default;

const std::string& Client::authority() const { return impl_->cfg.authority; }

awaitable<std::shared_ptr<quic::RequestStream>> Client::open(const quic::Headers& head) {
  auto impl = impl_;
  // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
  auto forget = [](const quic::ClientSession& s) { return s.closing(); };
  auto usable = [](const quic::ClientSession& s) { return s.usable(); };
  auto make = [impl]() -> awaitable<std::shared_ptr<quic::ClientSession>> {
    co_return co_await quic::connect(impl->cfg.node_addr, impl->cfg.tls, impl->cfg.quic, impl->log);
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto session = co_await impl->pool.get(forget, usable, make);
    error_code ec;
    auto st = session->open(head, true, ec);
    if (st) co_return st;
    // No stream credit left (a race with another tunnel) or closing: another connection.
    if (ec != asio::error::connection_refused && ec != asio::error::connection_aborted)
      throw system_error(ec, "masque: open stream");
  }
  throw system_error(asio::error::connection_aborted, "masque: no connection could take a stream");
}

// ---- UDP association --------------------------------------------------------------------------

namespace {

struct AssocState {
  explicit AssocState(asio::any_io_executor ex)
      : ready(ex, asio::steady_timer::time_point::max()), reaper(ex) {}
  struct Flow {
    std::shared_ptr<Stream> stream;
    std::chrono::steady_clock::time_point used = std::chrono::steady_clock::now();
  };
  std::map<std::string, Flow, std::less<>> flows;
  std::deque<std::pair<std::string, std::string>> in;  // (payload, from)
  asio::steady_timer ready;                            // condition: `in` grew, or closed
  asio::steady_timer reaper;
  bool closed = false;
  static constexpr std::size_t kMaxQueued = 256;

  void close() {
    if (closed) return;
    closed = true;
    for (auto& [t, f] : flows) f.stream->close();
    flows.clear();
    in.clear();
    ready.cancel();
    reaper.cancel();
  }
};

awaitable<void> read_flow(std::shared_ptr<AssocState> s, std::shared_ptr<Stream> flow,
                          std::string target) {
  std::vector<char> buf(65536);
  for (;;) {
    error_code ec;
    auto n = co_await flow->read_some(asio::buffer(buf), ec);
    if (ec || s->closed) break;
    if (auto it = s->flows.find(target); it != s->flows.end() && it->second.stream == flow)
      it->second.used = std::chrono::steady_clock::now();
    if (s->in.size() >= AssocState::kMaxQueued) continue;  // a reader that does not keep up
    s->in.emplace_back(std::string(buf.data(), n), target);
    s->ready.cancel();
  }
  if (auto it = s->flows.find(target); it != s->flows.end() && it->second.stream == flow)
    s->flows.erase(it);
}

awaitable<void> reap_flows(std::shared_ptr<AssocState> s, std::chrono::nanoseconds idle) {
  while (!s->closed) {
    s->reaper.expires_after(std::max<std::chrono::nanoseconds>(idle / 2, std::chrono::seconds(1)));
    auto [ec] = co_await s->reaper.async_wait(use_nothrow);
    if (s->closed) break;
    auto now = std::chrono::steady_clock::now();
    std::erase_if(s->flows, [&](auto& kv) {
      if (now - kv.second.used < idle) return false;
      kv.second.stream->close();
      return true;
    });
  }
}

class Association final : public NoByteStream, public PacketConn {
 public:
  Association(asio::any_io_executor ex, OpenFlow open, std::chrono::nanoseconds idle,
              log::Logger log)
      : ex_(ex),
        open_(std::move(open)),
        log_(std::move(log)),
        state_(std::make_shared<AssocState>(ex)) {
    asio::co_spawn(ex, reap_flows(state_, idle), asio::detached);
  }
  ~Association() override { state_->close(); }

  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    auto s = state_;
    while (s->in.empty() && !s->closed) co_await s->ready.async_wait(use_nothrow);
    if (s->closed) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
    ec = {};
    auto [payload, from] = std::move(s->in.front());
    s->in.pop_front();
    addr = std::move(from);
    std::size_t n = std::min(buf.size(), payload.size());
    std::memcpy(buf.data(), payload.data(), n);
    co_return n;
  }

  awaitable<void> write_to(asio::const_buffer buf, std::string_view addr, error_code& ec) override {
    auto s = state_;
    ec = {};
    if (s->closed) {
      ec = asio::error::operation_aborted;
      co_return;
    }
    std::string target(addr);
    auto it = s->flows.find(target);
    if (it == s->flows.end()) {
      std::shared_ptr<Stream> flow;
      try {
        flow = co_await open_(target);
      } catch (const std::exception& e) {
        log_.debug(fmt::format("masque: udp to {}: {}", target, e.what()));
        co_return;  // this datagram is lost; the next one tries again
      }
      if (s->closed) {
        flow->close();
        ec = asio::error::operation_aborted;
        co_return;
      }
      it = s->flows.insert_or_assign(target, AssocState::Flow{flow}).first;
      asio::co_spawn(ex_, read_flow(s, flow, target), asio::detached);
    }
    it->second.used = std::chrono::steady_clock::now();
    auto flow = it->second.stream;
    error_code wec;
    co_await flow->write_some(buf, wec);
    if (wec) flow->close();  // its reader ends it; the next datagram opens another
  }

  void close() override { state_->close(); }

  asio::any_io_executor executor() override { return ex_; }
  std::string remote_address() const override { return {}; }
  std::string local_address() const override { return {}; }

 private:
  asio::any_io_executor ex_;
  OpenFlow open_;
  log::Logger log_;
  std::shared_ptr<AssocState> state_;
};

}  // namespace

StreamPtr udp_association(asio::any_io_executor ex, OpenFlow open, std::chrono::nanoseconds idle,
                          log::Logger log) {
  return std::make_unique<Association>(std::move(ex), std::move(open), idle, std::move(log));
}

}  // namespace gost::net::masque
