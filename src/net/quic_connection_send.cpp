// A QUIC connection's send path: packets written in batches (one send quantum per flush, one ECN
// mark per batch), the batch the socket buffer could not take, the ngtcp2 timer (loss detection,
// pacing, idle and handshake timeouts).
#include <algorithm>

#include "net/quic_connection.hpp"

namespace gost::net::quic {

void Connection::send_connection_close(const ngtcp2_connection_close_error& ccerr) {
  thread_local std::array<std::uint8_t, 1500> buf;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf.data(), buf.size(), &ccerr,
                                              now_ts());
  if (n > 0) send_batch(buf.data(), static_cast<std::size_t>(n), static_cast<std::size_t>(n), 0);
}

void Connection::schedule_flush() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  asio::post(ex_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Connection::flush() {
  if (closed_ || blocked_ || !conn_) return;
  thread_local std::vector<std::uint8_t> buf(kMaxBatch + 2048);
  ngtcp2_tstamp ts = now_ts();
  std::size_t max_udp = ngtcp2_conn_get_max_tx_udp_payload_size(conn_);
  std::size_t max_pkts = std::clamp<std::size_t>(ngtcp2_conn_get_send_quantum(conn_) / max_udp, 1,
                                                 std::min(kMaxSegments, kMaxBatch / max_udp));
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  std::size_t off = 0, npkts = 0, seg = 0, sent = 0;
  unsigned ecn = 0;
  // A packet of `nwrite` bytes was written at buf[off]: batch it (one GSO send per batch of
  // equal segments with one ECN mark), send full batches. What the loop does next.
  enum { kNext, kBreak, kReturn };
  auto packet = [&](ngtcp2_ssize nwrite) -> int {
    if (nwrite == 0) {
      if (off > 0) send_batch(buf.data(), off, seg, ecn);
      return kBreak;
    }
    if (off == 0) {
      seg = static_cast<std::size_t>(nwrite);
      ecn = pi.ecn;
    } else if (pi.ecn != ecn || static_cast<std::size_t>(nwrite) > seg) {
      // A batch carries one ECN mark, and GSO cuts it into segments of its first packet's size:
      // send what came before this packet on its own.
      send_batch(buf.data(), off, seg, ecn);
      if (blocked_ || closed_) return kReturn;
      std::memmove(buf.data(), buf.data() + off, static_cast<std::size_t>(nwrite));
      off = 0;
      seg = static_cast<std::size_t>(nwrite);
      ecn = pi.ecn;
    }
    off += static_cast<std::size_t>(nwrite);
    sent += static_cast<std::size_t>(nwrite);
    ++npkts;
    // A GSO batch: equal segments, the last may be shorter and ends it.
    if (npkts >= max_pkts || static_cast<std::size_t>(nwrite) < seg || off + max_udp > kMaxBatch) {
      send_batch(buf.data(), off, seg, ecn);
      off = 0;
      if (blocked_ || closed_) return kReturn;
      if (npkts >= max_pkts) return kBreak;  // one send quantum per flush; the pacing timer resumes
    }
    return kNext;
  };
  for (;;) {
    // HTTP/3 datagrams first (quic_datagram.cpp): small, and late ones are worthless.
    if (!dgram_out_.empty()) {
      auto& d = dgram_out_.front();
      if (d.size() + kDatagramOverhead > ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_)) {
        // No packet can carry it (queued before a path change?): dropped, never a stall.
        dgram_out_bytes_ -= d.size();
        dgram_out_.pop_front();
        continue;
      }
      ngtcp2_vec v{reinterpret_cast<std::uint8_t*>(d.data()), d.size()};
      int accepted = 0;
      auto nwrite =
          ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, buf.data() + off, max_udp, &accepted,
                                      NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, ts);
      bool refused = nwrite == NGTCP2_ERR_INVALID_STATE || nwrite == NGTCP2_ERR_INVALID_ARGUMENT;
      if (accepted || refused) {
        dgram_out_bytes_ -= d.size();
        dgram_out_.pop_front();
      }
      if (nwrite == NGTCP2_ERR_WRITE_MORE || refused) continue;
      if (nwrite < 0) {
        fatal(static_cast<int>(nwrite));
        return;
      }
      int next = packet(nwrite);
      if (next == kReturn) return;
      if (next == kBreak) break;
      continue;
    }
    std::int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize sv = 0;
    // Where the stream data of this packet comes from: nghttp3, our copy of the control stream
    // (WebTransport SETTINGS), or a WebTransport stream (quic_webtransport.cpp).
    enum { kH3, kControl, kRaw } source = kH3;
    RequestStream* raw = nullptr;
    if (ctrl_sent_ < ctrl_total_ && !ctrl_blocked_) {
      source = kControl;
      sid = ctrl_id_;
      sv = static_cast<nghttp3_ssize>(control_vec(vec, 16));
    } else if (ngtcp2_conn_get_max_data_left(conn_)) {
      if (h3_) {
        sv = nghttp3_conn_writev_stream(h3_, &sid, &fin, vec, 16);
        if (sv < 0) {
          h3_error_ = nghttp3_err_infer_quic_app_error_code(static_cast<int>(sv));
          fatal(NGTCP2_ERR_CALLBACK_FAILURE);
          return;
        }
        if (sid >= 0 && sid == ctrl_id_ && patch_control()) {
          take_control(vec, static_cast<std::size_t>(sv));
          continue;
        }
      }
      if (sid < 0 && (raw = next_raw())) {
        source = kRaw;
        sid = raw->id_;
        sv = static_cast<nghttp3_ssize>(raw_vec(*raw, vec, 16, fin));
      }
    }
    // Bytes of the chosen source that ngtcp2 took.
    auto account = [&](ngtcp2_ssize n) -> bool {
      if (n < 0 || sid < 0) return true;
      auto un = static_cast<std::size_t>(n);
      if (source == kControl) {
        ctrl_sent_ += un;
      } else if (source == kRaw) {
        raw->raw_sent_ += un;
        if (fin && raw->raw_sent_ >= raw->out_unacked_ + raw->out_acked_) raw->raw_fin_sent_ = true;
      } else if (nghttp3_conn_add_write_offset(h3_, sid, un) != 0) {
        return false;
      }
      return true;
    };
    ngtcp2_ssize ndatalen = -1;
    std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    auto nwrite = ngtcp2_conn_writev_stream(
        conn_, &ps.path, &pi, buf.data() + off, max_udp, &ndatalen, flags, sid,
        reinterpret_cast<const ngtcp2_vec*>(vec), static_cast<std::size_t>(sv), ts);
    if (nwrite < 0) {
      switch (nwrite) {
        case NGTCP2_ERR_STREAM_DATA_BLOCKED:
          if (source == kControl) {
            ctrl_blocked_ = true;
          } else if (source == kRaw) {  // requeued when credit comes (extend_max_stream_data)
            raw_send_.pop_front();
            raw->raw_queued_ = false;
          } else {
            nghttp3_conn_block_stream(h3_, sid);
          }
          continue;
        case NGTCP2_ERR_STREAM_SHUT_WR:
          if (source == kControl) {
            ctrl_sent_ = ctrl_total_;
          } else if (source == kRaw) {  // reset by us or stopped by the peer: nothing more to send
            raw_send_.pop_front();
            raw->raw_queued_ = false;
            raw->raw_fin_sent_ = true;
          } else {
            nghttp3_conn_shutdown_stream_write(h3_, sid);
          }
          continue;
        case NGTCP2_ERR_WRITE_MORE:
          if (!account(ndatalen)) {
            fatal(NGTCP2_ERR_CALLBACK_FAILURE);
            return;
          }
          continue;
        default:
          fatal(static_cast<int>(nwrite));
          return;
      }
    }
    if (!account(ndatalen)) {
      fatal(NGTCP2_ERR_CALLBACK_FAILURE);
      return;
    }
    if (source == kRaw && !raw_send_.empty() && raw_send_.front() == raw->id_) {
      // Round robin: after kRawQuantum bytes the next stream is served.
      if (raw_turn_id_ != raw->id_) {
        raw_turn_id_ = raw->id_;
        raw_turn_bytes_ = 0;
      }
      raw_turn_bytes_ += static_cast<std::size_t>(std::max<ngtcp2_ssize>(ndatalen, 0));
      if (raw_turn_bytes_ >= kRawQuantum) {
        raw_turn_id_ = -1;
        raw_send_.pop_front();
        raw->raw_queued_ = false;
        enqueue_raw(*raw);
      }
    }
    int next = packet(nwrite);
    if (next == kReturn) return;
    if (next == kBreak) break;
  }
  pace(ts, sent, npkts >= max_pkts);
  arm_timer();
}

// Pacing as quic-go (GOST's QUIC stack), xquic and lsquic do it: no pacing delay shorter than
// kMinPacingDelay. ngtcp2 spaces every send quantum it is told about (update_pkt_tx_time) by its
// size over the sending rate; on a short path that is a few microseconds, and each wait is a
// timer armed, fired and re-armed — a third of relay+h3's CPU time went to timerfd_settime and the
// wake-ups. So ngtcp2 is told about the bytes sent only once they add up to that delay (it sums
// them until then); until then a flush that filled its send quantum goes on at the next turn of
// the event loop instead. On a long path one quantum already takes longer and is paced as before.
void Connection::pace(ngtcp2_tstamp ts, std::size_t sent, bool more) {
  unpaced_ += sent;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(conn_, &cs);
  // bytes per nanosecond: the congestion controller's, else ngtcp2's default cwnd / smoothed RTT
  double rate = cs.pacing_rate > 0 ? cs.pacing_rate
                : cs.smoothed_rtt > 0
                    ? static_cast<double>(cs.cwnd) / static_cast<double>(cs.smoothed_rtt)
                    : 0;
  if (rate <= 0 ||
      static_cast<double>(unpaced_) / rate >= static_cast<double>(kMinPacingDelay.count())) {
    ngtcp2_conn_update_pkt_tx_time(conn_, ts);
    unpaced_ = 0;
  } else if (more) {
    schedule_flush();
  }
}

void Connection::send_batch(const std::uint8_t* data, std::size_t len, std::size_t seg,
                            unsigned ecn) {
  bool refused = false;
  port_->carry_off = 0;
  if (!port_->send(reinterpret_cast<const sockaddr*>(&remote_), sockaddr_len(remote_), data, len,
                   seg, ecn, refused)) {
    std::size_t done = port_->carry_off;
    pending_.assign(reinterpret_cast<const char*>(data) + done, len - done);
    pending_seg_ = seg;
    pending_ecn_ = ecn;
    blocked_ = true;
    port_->sock.async_wait(udp::socket::wait_write, [self = shared_from_this()](error_code ec) {
      if (!ec) self->on_send_ready();
    });
    return;
  }
  if (refused && !server_) {
    // The server's port is closed (ICMP port unreachable): the connection is gone.
    asio::post(ex_,
               [self = shared_from_this()] { self->close(asio::error::connection_refused, true); });
  }
}

void Connection::on_send_ready() {
  blocked_ = false;
  if (closed_) return;
  std::string p = std::move(pending_);
  pending_.clear();
  send_batch(reinterpret_cast<const std::uint8_t*>(p.data()), p.size(), pending_seg_, pending_ecn_);
  if (!blocked_) flush();
}

// ngtcp2's expiry moves with nearly every packet (loss detection, ACK delay, idle timeout), and
// re-arming the timer each time costs a timerfd_settime: a quarter of relay+h3's CPU time. So the
// timer is re-armed only when the expiry moves earlier; when it moved later, the armed timer fires
// first and re-arms for the new expiry (on_timer), never after it is due.
void Connection::arm_timer() {
  if (closed_) return;
  ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == UINT64_MAX || expiry >= armed_) return;  // an armed timer comes first
  armed_ = expiry;
  ngtcp2_tstamp now = now_ts();
  auto wait = std::chrono::nanoseconds(expiry > now ? expiry - now : 0);
  timer_.expires_after(wait);
  timer_.async_wait([w = weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto self = w.lock()) self->on_timer();
  });
}

void Connection::on_timer() {
  armed_ = UINT64_MAX;
  if (closed_) return;
  ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == UINT64_MAX) return;
  if (expiry > now_ts()) {  // moved later since the timer was armed: not due yet
    arm_timer();
    return;
  }
  int rv = ngtcp2_conn_handle_expiry(conn_, now_ts());
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    close(asio::error::timed_out, true);
    return;
  }
  if (rv != 0) {
    if (!handshake_done_ && rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      close(asio::error::timed_out, true);
      return;
    }
    fatal(rv);
    return;
  }
  flush();
}

}  // namespace gost::net::quic
