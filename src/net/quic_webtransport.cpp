// WebTransport on the QUIC engine (docs/PROTOCOLS.md "wt: wire"): the bidirectional streams that
// start with the WebTransport signal bypass HTTP/3 framing — nghttp3 0.8 does not know them, so
// a peer's new bidirectional stream is held here until its first varint says what it is; their
// bytes go to ngtcp2 directly. nghttp3 0.8 cannot send extra SETTINGS either: its control stream
// is taken over and the WebTransport settings are added to its SETTINGS frame.
#include <fmt/format.h>

#include "net/quic_connection.hpp"
#include "proto/wt.hpp"

namespace gost::net::quic {

namespace wt = proto::wt;

// ---- receiving --------------------------------------------------------------------------------

bool Connection::route_raw(std::int64_t id, std::uint32_t flags, std::uint64_t offset,
                           const std::uint8_t* data, std::size_t len, int& rv) {
  rv = 0;
  if (!ngtcp2_is_bidi_stream(id)) return false;
  bool fin = flags & NGTCP2_STREAM_DATA_FLAG_FIN;
  if (auto* st = stream_of(id); st && st->raw_) {
    deliver_raw(*st, data, len, fin);
    return true;
  }
  if (ngtcp2_conn_is_local_stream(conn_, id)) return false;  // our requests
  if (wt_rejected_.count(id)) {  // late bytes of a stream we reset: never nghttp3's
    ngtcp2_conn_extend_max_offset(conn_, len);
    return true;
  }
  if (!server_) {
    // A server-initiated bidirectional stream: our sessions never accept one.
    reject_raw(id, len, wt::kStreamRejected);
    return true;
  }
  auto pit = wt_pending_.find(id);
  if (pit == wt_pending_.end() && offset != 0) return false;  // a request nghttp3 has
  std::string_view start(reinterpret_cast<const char*>(data), len);
  std::string joined;
  if (pit != wt_pending_.end()) {
    joined = pit->second;
    joined.append(start);
    start = joined;
  }
  auto kind = wt::classify_stream(start);
  switch (kind.kind) {
    case wt::StreamStart::need_more:
      if (fin) {  // a truncated preamble: that stream only
        wt_pending_.erase(id);
        reject_raw(id, len, NGHTTP3_H3_FRAME_ERROR);
      } else {
        // At most 16 bytes are held; the connection's credit for them is returned now.
        if (pit == wt_pending_.end())
          wt_pending_.emplace(id, std::string(start));
        else
          pit->second.append(reinterpret_cast<const char*>(data), len);
        ngtcp2_conn_extend_max_offset(conn_, len);
      }
      return true;
    case wt::StreamStart::invalid:
      wt_pending_.erase(id);
      reject_raw(id, len, NGHTTP3_H3_FRAME_UNEXPECTED);
      return true;
    case wt::StreamStart::http3: {
      // nghttp3 gets the stream from its first byte: what was held, then this.
      std::string all(start);
      wt_pending_.erase(id);
      rv = feed_h3(id, reinterpret_cast<const std::uint8_t*>(all.data()), all.size(), fin) == 0
               ? 0
               : NGTCP2_ERR_CALLBACK_FAILURE;
      return true;
    }
    case wt::StreamStart::webtransport:
      break;
  }
  std::string rest(start.substr(kind.length));
  wt_pending_.erase(id);
  auto sit = wt_sessions_.find(static_cast<std::int64_t>(kind.session));
  if (sit == wt_sessions_.end()) {
    log_.debug(fmt::format("quic {}: WebTransport stream {} names no session ({})", remote_text(),
                           id, kind.session));
    reject_raw(id, len, wt::kStreamRejected);
    return true;
  }
  auto st = std::shared_ptr<RequestStream>(new RequestStream(shared_from_this(), id));
  st->raw_ = true;
  st->session_ = sit->first;
  st->head_done_ = true;
  st->responded_ = true;
  streams_[id] = st;
  // The preamble is consumed now (held bytes were returned to the connection already); the rest
  // of the bytes as the application reads them.
  ngtcp2_conn_extend_max_stream_offset(conn_, id, kind.length);
  ngtcp2_conn_extend_max_offset(conn_, len - rest.size());
  deliver_raw(*st, reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size(), fin);
  asio::post(ex_, [f = sit->second, st] { f(st); });
  return true;
}

void Connection::deliver_raw(RequestStream& st, const std::uint8_t* data, std::size_t len,
                             bool fin) {
  if (len > 0) {
    if (st.in_off_ > 0 && st.in_off_ == st.in_.size()) {
      st.in_.clear();
      st.in_off_ = 0;
    }
    st.in_.append(reinterpret_cast<const char*>(data), len);
  }
  if (fin) st.in_eof_ = true;
  if (len > 0 || fin) st.wake_readers();
}

void Connection::reject_raw(std::int64_t id, std::size_t consumed, std::uint64_t code) {
  wt_rejected_.insert(id);
  ngtcp2_conn_shutdown_stream(conn_, id, code);
  ngtcp2_conn_extend_max_offset(conn_, consumed);
  schedule_flush();
}

void Connection::raw_closed(std::int64_t id, std::uint64_t code, bool app_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  auto s = it->second;
  streams_.erase(it);
  if (streams_.empty()) idle_since_ = Clock::now();
  s->closed_ = true;
  bool clean = (!app_code || code == NGHTTP3_H3_NO_ERROR) && s->in_eof_ && s->raw_fin_sent_;
  if (!clean) s->fail(asio::error::connection_reset);
  s->wake_readers();
  s->wake_writers();
}

// ---- sessions ---------------------------------------------------------------------------------

void Connection::accept_wt_session(RequestStream& connect, OnWtStream on_stream) {
  wt_sessions_[connect.id_] = std::move(on_stream);
}

void Connection::end_wt_session(std::int64_t id) {
  wt_sessions_.erase(id);
  std::vector<std::shared_ptr<RequestStream>> of_session;
  for (auto& [sid, s] : streams_)
    if (s->raw_ && s->session_ == id) of_session.push_back(s);
  for (auto& s : of_session) s->reset();
  schedule_flush();
}

std::shared_ptr<RequestStream> Connection::open_wt_stream(std::int64_t session, error_code& ec) {
  return open_raw_stream(wt::stream_preamble(static_cast<std::uint64_t>(session)), session, ec);
}

std::shared_ptr<RequestStream> Connection::open_raw_stream(std::string first, std::int64_t session,
                                                           error_code& ec) {
  std::int64_t id = open_bidi(ec);
  if (id < 0) return nullptr;
  auto st = std::shared_ptr<RequestStream>(new RequestStream(shared_from_this(), id));
  st->raw_ = true;
  st->session_ = session;
  st->head_done_ = true;
  st->responded_ = true;
  if (!first.empty()) {
    st->out_unacked_ = first.size();
    st->out_.push_back(std::move(first));
  }
  streams_[id] = st;
  queue_raw(*st);
  return st;
}

// ---- sending ----------------------------------------------------------------------------------

void Connection::enqueue_raw(RequestStream& st) {
  if (st.raw_queued_ || st.closed_ || st.error_) return;
  std::size_t total = st.out_unacked_ + st.out_acked_;  // the bytes in out_
  if (st.raw_sent_ >= total && (!st.out_fin_ || st.raw_fin_sent_)) return;
  st.raw_queued_ = true;
  raw_send_.push_back(st.id_);
}

void Connection::queue_raw(RequestStream& st) {
  enqueue_raw(st);
  schedule_flush();
}

RequestStream* Connection::next_raw() {
  while (!raw_send_.empty()) {
    auto* st = stream_of(raw_send_.front());
    if (st && st->raw_ && !st->closed_ && !st->error_) {
      std::size_t total = st->out_unacked_ + st->out_acked_;  // the bytes in out_
      if (st->raw_sent_ < total || (st->out_fin_ && !st->raw_fin_sent_)) return st;
    }
    if (st) st->raw_queued_ = false;
    raw_send_.pop_front();
  }
  return nullptr;
}

std::size_t Connection::raw_vec(RequestStream& st, nghttp3_vec* vec, std::size_t max,
                                int& fin) const {
  std::size_t n = 0, skip = st.raw_sent_;
  std::size_t i = 0;
  for (; i < st.out_.size() && n < max; ++i) {
    auto& chunk = st.out_[i];
    if (skip >= chunk.size()) {
      skip -= chunk.size();
      continue;
    }
    vec[n].base = reinterpret_cast<std::uint8_t*>(chunk.data()) + skip;
    vec[n].len = chunk.size() - skip;
    skip = 0;
    ++n;
  }
  fin = st.out_fin_ && i == st.out_.size() ? 1 : 0;
  return n;
}

void Connection::raw_acked(RequestStream& st, std::uint64_t len) {
  st.out_unacked_ -= std::min<std::size_t>(st.out_unacked_, len);
  while (len > 0 && !st.out_.empty()) {
    auto& f = st.out_.front();
    std::size_t take = std::min<std::uint64_t>(len, f.size() - st.out_acked_);
    st.out_acked_ += take;
    len -= take;
    if (st.out_acked_ == f.size()) {
      st.raw_sent_ -= std::min(st.raw_sent_, f.size());
      st.out_.pop_front();
      st.out_acked_ = 0;
    }
  }
  st.wake_writers();
}

// ---- the control stream -----------------------------------------------------------------------

void Connection::take_control(const nghttp3_vec* vec, std::size_t n) {
  std::string bytes;
  for (std::size_t i = 0; i < n; ++i)
    bytes.append(reinterpret_cast<const char*>(vec[i].base), vec[i].len);
  std::size_t taken = bytes.size();
  if (!ctrl_patched_) {
    ctrl_patched_ = true;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> extra = {{wt::kSettingH3Datagram, 1}};
    if (cfg_.webtransport) {
      extra.push_back({wt::kSettingEnableWebTransport, 1});
      extra.push_back({wt::kSettingMaxSessions, 16});
      extra.push_back({wt::kSettingWtEnabled, 1});
    }
    if (auto patched = wt::add_settings(bytes, extra))
      bytes = std::move(*patched);
    else
      log_.warn(
          fmt::format("quic {}: cannot add the WebTransport/datagram SETTINGS", remote_text()));
  }
  if (taken > 0) {
    nghttp3_conn_add_write_offset(h3_, ctrl_id_, taken);
    nghttp3_conn_add_ack_offset(h3_, ctrl_id_, taken);
  }
  if (!bytes.empty()) {
    ctrl_total_ += bytes.size();
    ctrl_out_.push_back(std::move(bytes));
  }
}

std::size_t Connection::control_vec(nghttp3_vec* vec, std::size_t max) const {
  std::size_t n = 0, skip = ctrl_sent_;
  for (const auto& chunk : ctrl_out_) {
    if (n == max) break;
    if (skip >= chunk.size()) {
      skip -= chunk.size();
      continue;
    }
    vec[n].base = reinterpret_cast<std::uint8_t*>(const_cast<char*>(chunk.data())) + skip;
    vec[n].len = chunk.size() - skip;
    skip = 0;
    ++n;
  }
  return n;
}

}  // namespace gost::net::quic
