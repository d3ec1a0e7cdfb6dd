// A stream multiplexer session over one Stream: xtaci/smux protocol version 1 (proto/smux.hpp), the
// session used by relay TCP BIND and SOCKS5 MBIND (docs/PROTOCOLS.md "smux") and by the
// mws/mwss transports. The client side opens streams (odd ids, the first one 3, as smux's client)
// and refuses peer-opened ones with a FIN; the server side queues the streams the peer opens for
// accept_stream() (a bounded backlog: the read loop waits while it is full). One read loop demultiplexes frames into per-stream queues;
// the bytes buffered over all streams are bounded (mux.maxReceiveBuffer) and the read loop pauses
// while the bound is reached (smux v1's session-wide back-pressure). A peer FIN is EOF for the
// stream (half-close); the end of the session ends every stream. Single-threaded: everything runs
// on the executor of the underlying stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/component.hpp"
#include "core/relay.hpp"
#include "core/stream.hpp"
#include "proto/smux.hpp"

namespace gost::net {

struct MuxConfig {
  // smux protocol version: 1, or 2 (per-stream windows: UPD frames; GOST's tunnel default).
  std::uint8_t version = 1;
  // Version 2: the window advertised to the peer (mux.maxStreamBuffer, smux default 64 KiB).
  std::uint32_t max_stream_buffer = 65536;
  std::chrono::nanoseconds keepalive_interval = std::chrono::seconds(10);
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(30);
  bool keepalive_disabled = false;
  std::size_t max_frame_size = 32768;
  std::size_t max_receive_buffer = 4 * 1024 * 1024;
};

// The handler's mux.* options (GOST names). mux.type other than smux, mux.version other than 1
// and 2 and mux.maxStreamWindow are rejected with a ConfigError naming `where`. Version 2 is
// accepted only where `max_version` allows it (the tunnel protocol, whose default is 2:
// `default_version`); `default_stream_buffer` is the version-2 window when mux.maxStreamBuffer is
// not set (go-gost/x handler/tunnel: 1 MiB; connector/tunnel: smux's 64 KiB).
MuxConfig mux_config(const config::Metadata& md, std::string_view where, int default_version = 1,
                     int max_version = 1, std::uint32_t default_stream_buffer = 65536);

class MuxSession : public std::enable_shared_from_this<MuxSession> {
 public:
  // The session client side (opens streams) over `conn`; starts the read loop and keepalive.
  static std::shared_ptr<MuxSession> client(StreamPtr conn, MuxConfig cfg);
  // The server side (accepts the streams the peer opens: mws/mwss listeners).
  static std::shared_ptr<MuxSession> server(StreamPtr conn, MuxConfig cfg);
  ~MuxSession();

  // Server side: the next stream the peer opened. Fails with ec once the session has ended.
  awaitable<StreamPtr> accept_stream(error_code& ec);
  // Streams open on this session (accepted or opened, not yet closed).
  std::size_t stream_count() const { return streams_.size(); }
  // When the last stream closed (or the session began); max() while one is open.
  std::chrono::steady_clock::time_point idle_since() const {
    return streams_.empty() ? idle_since_ : std::chrono::steady_clock::time_point::max();
  }
  // Ends the session once its last stream has closed (a session made for one tunnel).
  void close_when_idle() { close_when_idle_ = true; }

  // Opens a stream (sends SYN). Fails with ec when the session is closed.
  awaitable<StreamPtr> open_stream(error_code& ec);
  // Resolves once the session has ended.
  awaitable<void> wait_closed();
  void close();
  bool closed() const { return closed_; }

  struct StreamState;

 private:
  friend class MuxStream;
  MuxSession(StreamPtr conn, MuxConfig cfg);
  void start();
  void peer_opened(std::uint32_t sid);
  awaitable<void> read_loop();
  awaitable<void> keepalive_loop();
  awaitable<void> timeout_loop();
  // Writes one whole frame; frames of concurrent writers never interleave.
  awaitable<void> write_frame(proto::smux::Cmd cmd, std::uint32_t sid, std::string_view payload,
                              error_code& ec);
  awaitable<void> fin_frame(std::uint32_t sid);
  void send_fin_detached(std::uint32_t sid);
  // Version 2: tells the peer how much of stream `sid` has been read (a UPD frame).
  void send_upd_detached(std::uint32_t sid, std::uint32_t consumed);
  // Closes once the frames already queued (a FIN) are written.
  void close_after_writes();
  void release(std::size_t n);  // consumed buffered bytes

  StreamPtr conn_;
  MuxConfig cfg_;
  std::map<std::uint32_t, std::shared_ptr<StreamState>> streams_;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
  void forget_stream(std::uint32_t sid);  // erases it; notes when the session became idle
  std::uint32_t next_id_ = 1;
  bool server_ = false;
  bool close_when_idle_ = false;
  // Streams the peer opened that accept_stream() has not taken yet (bounded: kAcceptBacklog).
  std::deque<std::shared_ptr<StreamState>> accept_queue_;
  std::size_t buffered_ = 0;
  bool closed_ = false;
  bool writing_ = false;
  // Writers waiting for the connection, served in smux's shaper order: control frames first,
  // then the frame of the stream that has written the fewest bytes (a new stream's first frame
  // goes ahead of older streams' bulk data, so a burst of tunnels gets every request through
  // quickly), first come first served among equals. The writer done hands the connection to the
  // next one directly: one wake-up per frame, however many wait.
  struct WriteWaiter {
    std::uint64_t prio;
    std::uint64_t seq;
    asio::steady_timer* wake;
    bool* granted;
    bool operator>(const WriteWaiter& o) const {
      return prio != o.prio ? prio > o.prio : seq > o.seq;
    }
  };
  std::vector<WriteWaiter> write_queue_;  // a min-heap (std::greater)
  std::uint64_t write_seq_ = 0;
  void grant_next_writer();
  bool data_seen_ = false;
  asio::steady_timer writers_;   // condition: nobody writes nor waits to (or closed)
  asio::steady_timer budget_;    // condition: buffered bytes were consumed, a stream accepted
  asio::steady_timer done_;      // condition: the session ended
  asio::steady_timer incoming_;  // condition: a stream was queued for accept_stream()
  asio::steady_timer keepalive_;
  asio::steady_timer timeout_;
};

// The data phase of a multiplexed BIND (relay TCP BIND, SOCKS5 MBIND): for every connection
// accepted on `acceptor` a new stream is opened, `header(peer address)` is written on it, then the
// connection and the stream are relayed. Runs until the session or the listener fails; closes
// both and returns once every relayed connection has ended (their bytes added to `conn`).
awaitable<void> serve_mux_bind(std::shared_ptr<tcp::acceptor> acceptor,
                               std::shared_ptr<MuxSession> session,
                               std::function<std::string(const std::string&)> header,
                               ConnInfo& conn, RelayOptions options);

}  // namespace gost::net
