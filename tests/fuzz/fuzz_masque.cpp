// libFuzzer target: the MASQUE codecs (proto/masque) a peer's bytes reach: the CONNECT-UDP path
// (handler masque), an HTTP datagram's context ID, and capsules fed in pieces (a CONNECT-UDP
// stream's body).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/masque.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace masque = gost::proto::masque;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto t = masque::parse_udp_path(in)) {
    if (t->host.empty() || t->port == 0) __builtin_trap();
    // What we would send for it parses back to the same target.
    auto again = masque::parse_udp_path(masque::udp_path(t->host, t->port));
    if (!again || again->host != t->host || again->port != t->port) __builtin_trap();
  }
  if (auto p = masque::udp_payload(in); p && p->size() >= size) __builtin_trap();
  // Capsules in two pieces split at the first byte's value: the same DATAGRAMs as in one piece.
  std::size_t cut = size ? data[0] % (size + 1) : 0;
  masque::CapsuleReader whole, split;
  whole.feed(in);
  split.feed(in.substr(0, cut));
  std::vector<std::string> a, b;
  while (auto d = whole.next()) a.push_back(*d);
  while (auto d = split.next()) b.push_back(*d);
  split.feed(in.substr(cut));
  while (auto d = split.next()) b.push_back(*d);
  if (whole.bad() != split.bad() || (!whole.bad() && a != b)) __builtin_trap();
  for (const auto& d : a)
    if (d.size() > masque::kMaxDatagramCapsule) __builtin_trap();
  // What we write reads back.
  masque::CapsuleReader round;
  round.feed(masque::datagram_capsule(in.substr(0, std::min<std::size_t>(size, 70000))));
  auto r = round.next();
  if (size <= masque::kMaxDatagramCapsule && (!r || *r != in)) __builtin_trap();
  return 0;
}
