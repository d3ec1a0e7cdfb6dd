// HTTP/3 datagrams on the QUIC engine (RFC 9297 §2.1, docs/PROTOCOLS.md "masque: wire"): a QUIC
// DATAGRAM frame carries the quarter stream ID of the request stream it belongs to, then the
// HTTP datagram (context ID and payload). Received ones go to their stream's queue; sent ones wait
// in the connection's queue for the send path (quic_connection_send.cpp), which packs them
// before stream data.
#include "net/quic_connection.hpp"
#include "proto/wt.hpp"

namespace gost::net::quic {

namespace {
// What may wait to be sent on one connection; beyond it datagrams are dropped (UDP semantics: a
// sender faster than the path loses datagrams, it never holds memory without bound).
constexpr std::size_t kMaxDatagramBacklog = 1 << 20;
}  // namespace

void Connection::on_h3_datagram(const std::uint8_t* data, std::size_t len) {
  std::string_view in(reinterpret_cast<const char*>(data), len);
  auto quarter = proto::wt::read_varint(in);
  if (!quarter || quarter->first > (std::uint64_t{1} << 60)) return;  // malformed: dropped
  auto* st = stream_of(static_cast<std::int64_t>(quarter->first * 4));
  // Datagrams for a stream that does not take them (yet, or any more) are dropped (§2.1).
  if (!st || !st->dgram_on_ || st->closed_ || st->error_) return;
  if (st->dgram_in_.size() >= RequestStream::kMaxDatagramQueue) return;
  st->dgram_in_.emplace_back(in.substr(quarter->second));
  st->wake_readers();
}

bool Connection::send_h3_datagram(std::int64_t id, std::string_view payload) {
  if (closed_ || !conn_ || !handshake_done_) return false;
  const auto* params = ngtcp2_conn_get_remote_transport_params(conn_);
  if (!params || params->max_datagram_frame_size == 0) return false;
  std::string d;
  proto::wt::append_varint(d, static_cast<std::uint64_t>(id) / 4);
  // The path's packet size, not the configured maximum: 1,200 bytes until a larger one is
  // probed.
  std::size_t max_udp = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  if (d.size() + payload.size() + kDatagramOverhead > max_udp ||
      d.size() + payload.size() + 3 > params->max_datagram_frame_size)
    return false;
  if (dgram_out_bytes_ + d.size() + payload.size() > kMaxDatagramBacklog) return true;  // dropped
  d.append(payload);
  dgram_out_bytes_ += d.size();
  dgram_out_.push_back(std::move(d));
  schedule_flush();
  return true;
}

}  // namespace gost::net::quic
