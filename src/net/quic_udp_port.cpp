#include "net/quic_udp_port.hpp"

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace gost::net::quic {

namespace {

// GSO/GRO can be turned off to measure what they bring (GOST_QUIC_GSO=0).
bool offload_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("GOST_QUIC_GSO");
    return !(v && std::string_view(v) == "0");
  }();
  return allowed;
}

}  // namespace

UdpPort::UdpPort(udp::socket s) : sock(std::move(s)) {
  int fd = sock.native_handle();
  int one = 1, zero = 0;
  if (offload_allowed()) {
    gso = ::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
    ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  local = ss;
  v6 = ss.ss_family == AF_INET6;
  ::setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
  if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
  sock.non_blocking(true);
}

bool UdpPort::send(const sockaddr* to, socklen_t tolen, const std::uint8_t* data, std::size_t len,
                   std::size_t seg, unsigned ecn, bool& refused) {
  set_ecn(ecn, to->sa_family);
  int fd = sock.native_handle();
  if (len > seg && !gso) {  // no GSO: one sendmsg per packet
    for (std::size_t off = 0; off < len; off += seg) {
      std::size_t n = std::min(seg, len - off);
      if (!send_one(fd, to, tolen, data + off, n, 0, refused)) {
        carry_off = off;  // what was sent already is not sent again
        return false;
      }
    }
    return true;
  }
  return send_one(fd, to, tolen, data, len, len > seg ? seg : 0, refused);
}

bool UdpPort::send_one(int fd, const sockaddr* to, socklen_t tolen, const std::uint8_t* data,
                       std::size_t len, std::size_t gso_size, bool& refused) {
  iovec iov{const_cast<std::uint8_t*>(data), len};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = tolen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))];
  if (gso_size) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
    std::uint16_t s = static_cast<std::uint16_t>(gso_size);
    std::memcpy(CMSG_DATA(cm), &s, sizeof s);
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, 0);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    if (errno == ECONNREFUSED) refused = true;
    if (errno == EIO && gso_size) gso = false;  // GSO refused by the device: stop using it
    return true;                                // dropped; loss recovery resends
  }
}

void UdpPort::set_ecn(unsigned ecn, int family) {
  if (static_cast<int>(ecn) == ecn_) return;
  ecn_ = static_cast<int>(ecn);
  int tos = static_cast<int>(ecn);
  int fd = sock.native_handle();
  if (family == AF_INET6 || v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
  if (family == AF_INET || v6) ::setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
}

}  // namespace gost::net::quic
