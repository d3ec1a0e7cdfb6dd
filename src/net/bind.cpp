#include "net/bind.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include "core/refusals.hpp"
#include "core/timeout.hpp"

namespace gost::net {
namespace {

using Clock = std::chrono::steady_clock;

// An inbound stream with the addresses the binding knows: the peer at the node and the bound
// address (what logs and metrics show for the connection).
class AddressedStream final : public Stream {
 public:
  AddressedStream(StreamPtr inner, std::string remote, std::string local)
      : inner_(std::move(inner)), remote_(std::move(remote)), local_(std::move(local)) {}
  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    return inner_->read_some(buf, ec);
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    return inner_->write_some(buf, ec);
  }
  awaitable<void> wait_readable(error_code& ec) override { return inner_->wait_readable(ec); }
  Poll poll_readable() override { return inner_->poll_readable(); }
  bool writable_now() override { return inner_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return inner_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override { inner_->close(); }
  tcp::socket* raw_tcp() override { return inner_->raw_tcp(); }
  tcp::socket* raw_tcp_write() override { return inner_->raw_tcp_write(); }
  std::string remote_address() const override { return remote_; }
  std::string local_address() const override { return local_; }

 private:
  StreamPtr inner_;
  std::string remote_;
  std::string local_;
};

class MuxBinding final : public Binding {
 public:
  MuxBinding(std::shared_ptr<MuxSession> session, std::string bound, PeerHeaderReader read_header,
             log::Logger log)
      : session_(std::move(session)),
        bound_(std::move(bound)),
        read_header_(std::move(read_header)),
        log_(std::move(log)) {}
  ~MuxBinding() override { session_->close(); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    for (;;) {
      auto s = co_await session_->accept_stream(ec);
      if (ec || !s) {
        if (!ec) ec = asio::error::eof;
        co_return nullptr;
      }
      // Each header is read here, one at a time, as GOST does (connector/relay bindListener),
      // but bounded: a stream whose header does not come is dropped, not the binding.
      Stream& st = *s;
      error_code hec;
      std::string peer;
      {
        Deadline deadline(st.executor(), kPeerHeaderTimeout, [&st] { st.close(); });
        peer = co_await read_header_(st, hec);
      }
      if (hec) {
        log_.error(fmt::format("get peer failed: {}", hec.message()));
        s->close();
        continue;
      }
      co_return std::make_unique<AddressedStream>(std::move(s), std::move(peer), bound_);
    }
  }
  std::string address() const override { return bound_; }
  void close() override { session_->close(); }

 private:
  std::shared_ptr<MuxSession> session_;
  std::string bound_;
  PeerHeaderReader read_header_;
  log::Logger log_;
};

// ---- UDP: one flow per peer ----------------------------------------------------------------

struct FlowState;

// Shared by the binding, its read loop and every flow (a flow may outlive the binding).
struct UdpCore {
  UdpCore(std::unique_ptr<PacketConn> c, asio::any_io_executor e, std::string b,
          const BindOptions& o, log::Logger l)
      : conn(std::move(c)),
        ex(std::move(e)),
        bound(std::move(b)),
        opts(o),
        log(std::move(l)),
        pending_changed(ex),
        write_turn(ex) {
    pending_changed.expires_at(asio::steady_timer::time_point::max());
    write_turn.expires_at(asio::steady_timer::time_point::max());
  }
  // Datagrams from and to every peer: a UDP-TUN stream (a BIND), or a UDP socket (listener udp).
  std::unique_ptr<PacketConn> conn;
  asio::any_io_executor ex;
  bool stream = false;  // conn is a stream (UDP-TUN): a failed write ends every flow
  std::shared_ptr<Refusals> refusals;  // the new peers dropped for a full backlog (listener udp)

  std::string name() const { return fmt::format("{} {}/udp", stream ? "bind" : "listen", bound); }
  std::string bound;
  BindOptions opts;
  log::Logger log;
  std::map<std::string, std::weak_ptr<FlowState>, std::less<>> flows;
  std::deque<StreamPtr> pending;       // new flows waiting for accept()
  asio::steady_timer pending_changed;  // condition: a flow was queued, or the binding ended
  asio::steady_timer write_turn;       // condition: the writer finished a datagram
  bool writing = false;
  bool closed = false;
  error_code error;

  void end(error_code ec);
};

struct FlowState {
  FlowState(std::shared_ptr<UdpCore> c, std::string p)
      : core(std::move(c)), peer(std::move(p)), ready(core->ex) {
    ready.expires_at(asio::steady_timer::time_point::max());
  }
  std::shared_ptr<UdpCore> core;
  std::string peer;
  std::deque<std::string> queue;
  asio::steady_timer ready;  // condition: a datagram arrived, or the flow ended
  Clock::time_point last = Clock::now();
  std::uint64_t requests = 0;  // datagrams the flow has taken from the queue
  std::uint64_t answers = 0;   // datagrams it has sent the peer
  bool closed = false;

  void close() {
    closed = true;
    ready.cancel();
    forget();
  }
  // Drops this flow's entry (a later datagram of the peer starts a new flow).
  void forget() {
    auto it = core->flows.find(peer);
    if (it == core->flows.end()) return;
    auto f = it->second.lock();
    if (!f || f.get() == this) core->flows.erase(it);
  }
};

void UdpCore::end(error_code ec) {
  if (closed) return;
  closed = true;
  error = ec ? ec : asio::error::eof;
  conn->close();
  pending_changed.cancel();
  write_turn.cancel();
  auto all = std::move(flows);
  flows.clear();
  for (auto& [peer, w] : all)
    if (auto f = w.lock()) {
      f->closed = true;
      f->ready.cancel();
    }
  // The flows never accepted hold the core: let them go.
  auto unaccepted = std::move(pending);
  pending.clear();
}

class UdpFlow final : public Stream, public PacketConn {
 public:
  explicit UdpFlow(std::shared_ptr<FlowState> st) : st_(std::move(st)) {}
  ~UdpFlow() override { st_->close(); }

  asio::any_io_executor executor() override { return st_->core->ex; }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    auto st = st_;
    for (;;) {
      if (!st->queue.empty()) {
        std::string d = std::move(st->queue.front());
        st->queue.pop_front();
        std::size_t n = std::min(buf.size(), d.size());
        std::memcpy(buf.data(), d.data(), n);
        st->last = Clock::now();
        ++st->requests;
        co_return n;
      }
      if (st->closed) {
        ec = asio::error::eof;
        co_return 0;
      }
      // Idle for the TTL: the flow ends (GOST's udp listener conn TTL, refreshed by traffic).
      auto deadline = st->last + st->core->opts.udp_ttl;
      if (Clock::now() >= deadline) {
        st->close();
        ec = asio::error::eof;
        co_return 0;
      }
      st->ready.expires_at(deadline);
      co_await st->ready.async_wait(use_nothrow);
    }
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    co_await write_to(buf, st_->peer, ec);
    co_return ec ? 0 : buf.size();
  }

  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    auto n = co_await read_some(buf, ec);
    if (!ec) addr = st_->peer;
    co_return n;
  }

  // Frames of concurrent flows never interleave on a UDP-TUN stream: one writer at a time.
  awaitable<void> write_to(asio::const_buffer buf, std::string_view, error_code& ec) override {
    auto st = st_;
    auto core = st->core;
    // The timer never expires (set once): cancel_one() hands the conn to the next writer. Setting
    // its expiry here would cancel the other writers' waits.
    while (core->writing && !core->closed) co_await core->write_turn.async_wait(use_nothrow);
    if (core->closed || st->closed) {
      ec = asio::error::eof;
      co_return;
    }
    core->writing = true;
    co_await core->conn->write_to(buf, st->peer, ec);
    core->writing = false;
    core->write_turn.cancel_one();
    st->last = Clock::now();
    // A stream that failed carries no flow any more; a socket refusing one datagram (an
    // unreachable peer, a firewall) still serves the others.
    if (ec && ec != asio::error::message_size && core->stream) core->end(ec);
    // Without keepalive a flow is request/response (GOST's udp listener): it ends once every
    // request it has taken has had an answer and none waits, and the next datagram of the peer
    // starts a new flow. (GOST ends it at the first answer, losing the answers to requests the
    // peer sent back to back — a resolver's A and AAAA queries.)
    if (!ec && !core->opts.udp_keepalive && ++st->answers >= st->requests && st->queue.empty())
      st->close();
  }

  awaitable<void> shutdown_write(error_code&) override { co_return; }
  void close() override { st_->close(); }
  std::string remote_address() const override { return st_->peer; }
  std::string local_address() const override { return st_->core->bound; }

 private:
  std::shared_ptr<FlowState> st_;
};

awaitable<void> udp_read_loop(std::shared_ptr<UdpCore> core) {
  std::string buf(std::max<std::size_t>(core->opts.udp_buffer_size, 1), '\0');
  for (;;) {
    std::string peer;
    error_code ec;
    std::size_t n = co_await core->conn->read_from(asio::buffer(buf), peer, ec);
    if (core->closed) co_return;
    if (ec) {
      core->log.debug(fmt::format("{}: {}", core->name(), ec.message()));
      core->end(ec);
      co_return;
    }
    std::string datagram(buf.data(), n);
    if (auto it = core->flows.find(peer); it != core->flows.end()) {
      if (auto f = it->second.lock(); f && !f->closed) {
        if (f->queue.size() >= core->opts.udp_queue_size) {
          core->log.debug(
              fmt::format("{}: queue of {} is full, datagram dropped", core->name(), peer));
          continue;
        }
        f->queue.push_back(std::move(datagram));
        f->ready.cancel();
        continue;
      }
      core->flows.erase(it);
    }
    if (core->pending.size() >= core->opts.backlog) {
      if (core->refusals)
        core->refusals->add("backlog full, a new peer's datagram dropped");
      else
        core->log.debug(
            fmt::format("{}: backlog full, datagram from {} dropped", core->name(), peer));
      continue;
    }
    auto f = std::make_shared<FlowState>(core, peer);
    f->queue.push_back(std::move(datagram));
    core->flows.emplace(peer, f);
    core->pending.push_back(std::make_unique<UdpFlow>(std::move(f)));
    core->pending_changed.cancel();
  }
}

class UdpBinding final : public Binding {
 public:
  explicit UdpBinding(std::shared_ptr<UdpCore> core) : core_(std::move(core)) {
    asio::co_spawn(core_->ex, udp_read_loop(core_), asio::detached);
  }
  ~UdpBinding() override { core_->end(asio::error::operation_aborted); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    auto core = core_;
    while (core->pending.empty() && !core->closed)
      co_await core->pending_changed.async_wait(use_nothrow);
    if (!core->pending.empty()) {
      StreamPtr s = std::move(core->pending.front());
      core->pending.pop_front();
      co_return s;
    }
    ec = core->error;
    co_return nullptr;
  }
  std::string address() const override { return core_->bound; }
  void close() override { core_->end(asio::error::operation_aborted); }

 private:
  std::shared_ptr<UdpCore> core_;
};

}  // namespace

std::unique_ptr<Binding> mux_binding(std::shared_ptr<MuxSession> session, std::string bound,
                                     PeerHeaderReader read_header, log::Logger log) {
  return std::make_unique<MuxBinding>(std::move(session), std::move(bound), std::move(read_header),
                                      std::move(log));
}

void read_udp_flow_options(const config::Metadata& md, BindOptions& o) {
  if (auto d = md.get_duration("ttl"); d && d->count() > 0) o.udp_ttl = *d;
  if (auto n = md.get_int("readBufferSize"); n && *n > 0)
    o.udp_buffer_size = static_cast<std::size_t>(std::min<std::int64_t>(*n, 65535));
  if (auto n = md.get_int("readQueueSize"); n && *n > 0)
    o.udp_queue_size = static_cast<std::size_t>(std::min<std::int64_t>(*n, 65536));
  if (auto n = md.get_int("backlog"); n && *n > 0)
    o.backlog = static_cast<std::size_t>(std::min<std::int64_t>(*n, 65536));
}

std::unique_ptr<Binding> udp_flows(std::unique_ptr<PacketConn> conn, asio::any_io_executor ex,
                                   std::string bound, const BindOptions& options, log::Logger log,
                                   std::shared_ptr<Refusals> refusals) {
  auto core = std::make_shared<UdpCore>(std::move(conn), std::move(ex), std::move(bound), options,
                                        std::move(log));
  core->refusals = std::move(refusals);
  return std::make_unique<UdpBinding>(std::move(core));
}

std::unique_ptr<Binding> udp_binding(std::unique_ptr<UdpTunStream> tun, std::string bound,
                                     const BindOptions& options, log::Logger log) {
  auto ex = tun->executor();
  auto core = std::make_shared<UdpCore>(std::move(tun), std::move(ex), std::move(bound), options,
                                        std::move(log));
  core->stream = true;
  return std::make_unique<UdpBinding>(std::move(core));
}

}  // namespace gost::net
