#include "proto/grpc.hpp"

#include <algorithm>
#include <cstring>

namespace gost::proto::grpc {

std::string method_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return "/GostTunel/Tunnel";
  auto slash = path.find('/');
  if (slash == std::string_view::npos) return "/" + std::string(path) + "/Tunnel";
  std::string method(path.substr(slash + 1));
  std::replace(method.begin(), method.end(), '/', '-');
  return "/" + std::string(path.substr(0, slash)) + "/" + method;
}

std::size_t put_varint(std::uint8_t* out, std::uint64_t v) {
  std::size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<std::uint8_t>(v);
  return n;
}

std::size_t chunk_header(std::uint8_t* out, std::size_t n) {
  std::size_t len = 0;
  if (n > 0) {
    out[kPrefixSize] = 0x0a;  // field 1, wire type 2 (length-delimited)
    len = 1 + put_varint(out + kPrefixSize + 1, n);
  }
  std::uint64_t total = len + n;
  out[0] = 0;  // not compressed
  out[1] = static_cast<std::uint8_t>(total >> 24);
  out[2] = static_cast<std::uint8_t>(total >> 16);
  out[3] = static_cast<std::uint8_t>(total >> 8);
  out[4] = static_cast<std::uint8_t>(total);
  return kPrefixSize + len;
}

std::string encode_chunk(std::string_view data) {
  std::uint8_t head[kMaxChunkHeader];
  std::size_t h = chunk_header(head, data.size());
  std::string out(reinterpret_cast<const char*>(head), h);
  out.append(data);
  return out;
}

void ChunkDecoder::fail(int status, std::string message) {
  state_ = State::failed;
  status_ = status;
  message_ = std::move(message);
}

// One field of the current message is complete.
void ChunkDecoder::field_done() {
  state_ = message_left_ == 0 ? State::prefix : State::tag;
  varint_ = 0;
  shift_ = 0;
}

std::size_t ChunkDecoder::decode(const std::uint8_t* in, std::size_t n, std::uint8_t* out) {
  std::size_t produced = 0;
  std::size_t i = 0;
  while (i < n && state_ != State::failed) {
    switch (state_) {
      case State::prefix: {
        std::size_t k = std::min(kPrefixSize - have_, n - i);
        std::memcpy(prefix_ + have_, in + i, k);
        have_ += k;
        i += k;
        if (have_ < kPrefixSize) break;
        have_ = 0;
        std::size_t len = (std::size_t{prefix_[1]} << 24) | (std::size_t{prefix_[2]} << 16) |
                          (std::size_t{prefix_[3]} << 8) | prefix_[4];
        if (prefix_[0] == 1) {
          fail(kInternal, "grpc: compressed flag set with identity or empty encoding");
        } else if (prefix_[0] != 0) {
          fail(kInternal, "grpc: received unexpected payload format");
        } else if (len > max_message_) {
          fail(kResourceExhausted, "grpc: received message larger than max (" +
                                       std::to_string(len) + " vs. " +
                                       std::to_string(max_message_) + ")");
        } else if (len > 0) {
          message_left_ = len;
          field_done();
        }
        break;
      }
      case State::tag:
      case State::length:
      case State::skip_varint: {
        std::uint8_t b = in[i++];
        --message_left_;
        if (shift_ >= 64 || (shift_ == 63 && b > 1)) {
          fail(kInternal, "grpc: failed to unmarshal the received message: varint overflow");
          break;
        }
        varint_ |= std::uint64_t{b & 0x7fu} << shift_;
        shift_ += 7;
        if (b & 0x80) {
          if (message_left_ == 0)
            fail(kInternal, "grpc: failed to unmarshal the received message: truncated varint");
          break;
        }
        std::uint64_t v = varint_;
        varint_ = 0;
        shift_ = 0;
        if (state_ == State::skip_varint) {
          field_done();
        } else if (state_ == State::tag) {
          std::uint64_t field = v >> 3;
          unsigned wire = static_cast<unsigned>(v & 7);
          if (field == 0 || field > 0x1fffffff) {
            fail(kInternal, "grpc: failed to unmarshal the received message: invalid field number");
            break;
          }
          field1_ = field == 1 && wire == 2;
          std::uint64_t fixed = wire == 1 ? 8 : wire == 5 ? 4 : 0;
          if (wire == 0) {
            state_ = State::skip_varint;
          } else if (wire == 2) {
            state_ = State::length;
          } else if (fixed > 0) {
            state_ = State::skip;
            field_left_ = fixed;
          } else {
            fail(kInternal, "grpc: failed to unmarshal the received message: bad wire type");
            break;
          }
          if (message_left_ < (wire == 0 || wire == 2 ? 1 : fixed))
            fail(kInternal, "grpc: failed to unmarshal the received message: truncated field");
        } else {  // length of a length-delimited field
          if (v > message_left_) {
            fail(kInternal, "grpc: failed to unmarshal the received message: truncated field");
            break;
          }
          field_left_ = v;
          if (v == 0)
            field_done();
          else
            state_ = field1_ ? State::data : State::skip;
        }
        break;
      }
      case State::data:
      case State::skip: {
        std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(field_left_, n - i));
        if (state_ == State::data) {
          if (out + produced != in + i) std::memmove(out + produced, in + i, k);
          produced += k;
        }
        i += k;
        field_left_ -= k;
        message_left_ -= k;
        if (field_left_ == 0) field_done();
        break;
      }
      case State::failed:
        break;
    }
  }
  return failed() ? 0 : produced;
}

}  // namespace gost::proto::grpc
