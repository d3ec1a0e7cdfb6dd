#include "proto/tls_hello.hpp"

#include <cstdint>

namespace gost::proto::tls {
namespace {

// A bounds-checked big-endian reader: every read past the end sets `ok` to false.
struct Reader {
  std::string_view d;
  bool ok = true;
  std::uint32_t u(std::size_t n) {
    if (!ok || d.size() < n) {
      ok = false;
      return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(d[i]);
    d.remove_prefix(n);
    return v;
  }
  std::string_view bytes(std::size_t n) {
    if (!ok || d.size() < n) {
      ok = false;
      return {};
    }
    auto out = d.substr(0, n);
    d.remove_prefix(n);
    return out;
  }
  Reader sub(std::size_t len_bytes) { return Reader{bytes(u(len_bytes)), ok}; }
};

}  // namespace

bool is_handshake_record(std::string_view head) {
  if (head.size() < kRecordHeader) return false;
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(head[i]); };
  return b(0) == 0x16 && b(1) == 0x03 && b(2) >= 0x01 && b(2) <= 0x04;
}

std::size_t record_length(std::string_view head) {
  return (static_cast<unsigned char>(head[3]) << 8) | static_cast<unsigned char>(head[4]);
}

HelloStatus parse_client_hello(std::string_view record, std::string& server_name) {
  if (!is_handshake_record(record)) return HelloStatus::bad;
  Reader r{record.substr(kRecordHeader)};
  if (record.size() - kRecordHeader != record_length(record)) return HelloStatus::bad;
  if (r.u(1) != 0x01) return HelloStatus::bad;  // ClientHello
  Reader hello = r.sub(3);
  hello.u(2);       // legacy_version
  hello.bytes(32);  // random
  hello.sub(1);     // session id
  hello.sub(2);     // cipher suites
  hello.sub(1);     // compression methods
  if (!hello.ok) return HelloStatus::bad;
  if (hello.d.empty()) return HelloStatus::no_sni;
  Reader exts = hello.sub(2);
  while (exts.ok && !exts.d.empty()) {
    auto type = exts.u(2);
    Reader ext = exts.sub(2);
    if (!exts.ok) break;
    if (type != 0x0000) continue;  // server_name
    Reader list = ext.sub(2);
    while (list.ok && !list.d.empty()) {
      auto name_type = list.u(1);
      auto name = list.sub(2);
      if (!list.ok) break;
      if (name_type == 0 && !name.d.empty()) {
        server_name.assign(name.d);
        return HelloStatus::ok;
      }
    }
    return list.ok ? HelloStatus::no_sni : HelloStatus::bad;
  }
  return exts.ok ? HelloStatus::no_sni : HelloStatus::bad;
}

}  // namespace gost::proto::tls
