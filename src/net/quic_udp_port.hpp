// A UDP socket of the QUIC engine: batched sends (one sendmsg per batch, UDP GSO when the kernel
// offers it), ECN marks, and coalesced receives (UDP GRO). A server has one per worker, a client
// connection one of its own (connected).
#pragma once

#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "net/quic_internal.hpp"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace gost::net::quic {

class UdpPort {
 public:
  explicit UdpPort(udp::socket s);

  // Sends `len` bytes as segments of `seg` bytes (the last may be shorter) to `to`. Returns false
  // when the socket buffer is full (EAGAIN); other errors drop the packets (QUIC recovers), except
  // that `refused` is set on ECONNREFUSED (a connected client socket: the server port is closed).
  bool send(const sockaddr* to, socklen_t tolen, const std::uint8_t* data, std::size_t len,
            std::size_t seg, unsigned ecn, bool& refused);

  udp::socket sock;
  bool gso = false;
  bool v6 = false;
  sockaddr_storage local{};
  std::size_t carry_off = 0;  // bytes of the failed batch already sent (no-GSO path)

 private:
  bool send_one(int fd, const sockaddr* to, socklen_t tolen, const std::uint8_t* data,
                std::size_t len, std::size_t gso_size, bool& refused);
  void set_ecn(unsigned ecn, int family);
  int ecn_ = -1;
};

struct Datagram {
  const std::uint8_t* data;
  std::size_t len;
  const sockaddr_storage* from;
  unsigned ecn;
};

// Reads what is queued on `port` (at most kRecvBudget datagrams): each to `on`. Returns the
// socket error that ended reading other than EAGAIN (e.g. ECONNREFUSED on a connected socket).
template <class On>
int receive_batch(UdpPort& port, On&& on) {
  thread_local std::vector<std::uint8_t> buf(kMaxBatch + 1500);
  int fd = port.sock.native_handle();
  for (int i = 0; i < kRecvBudget; ++i) {
    sockaddr_storage from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int)) * 4];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    std::size_t seg = static_cast<std::size_t>(n);
    unsigned ecn = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int s = 0;
        std::memcpy(&s, CMSG_DATA(cm), sizeof s);
        if (s > 0) seg = static_cast<std::size_t>(s);
      } else if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS) ||
                 (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS)) {
        unsigned char tos = 0;
        if (cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int t = 0;
          std::memcpy(&t, CMSG_DATA(cm), sizeof t);
          tos = static_cast<unsigned char>(t);
        } else {
          std::memcpy(&tos, CMSG_DATA(cm), 1);
        }
        ecn = tos & 0x3;
      }
    }
    if (seg == 0) seg = static_cast<std::size_t>(n);
    for (std::size_t off = 0; off < static_cast<std::size_t>(n); off += seg)
      on(Datagram{buf.data() + off, std::min(seg, static_cast<std::size_t>(n) - off), &from, ecn});
  }
  return 0;
}

}  // namespace gost::net::quic
