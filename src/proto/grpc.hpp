// gRPC framing of GOST's tunnel (docs/PROTOCOLS.md "grpc: framing"): each direction is a sequence
// of length-prefixed messages (1-byte compressed flag, 4-byte big-endian length) whose payload is
// the protobuf message `Chunk { bytes data = 1; }`. Hand-coded: one bytes field needs no protobuf
// library. Sans-IO: the decoder works on whatever pieces the transport delivers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gost::proto::grpc {

inline constexpr std::size_t kPrefixSize = 5;
// Prefix + tag byte + a varint of a length below 2^32.
inline constexpr std::size_t kMaxChunkHeader = kPrefixSize + 1 + 5;
// grpc-go's default receive limit (docs/PROTOCOLS.md "grpc: framing"): never send more, never
// accept more.
inline constexpr std::size_t kMaxMessage = 4 << 20;

// gRPC status codes used here.
enum Status : int {
  kOk = 0,
  kInvalidArgument = 3,
  kResourceExhausted = 8,
  kUnimplemented = 12,
  kInternal = 13,
};

// The HTTP/2 :path of the tunnel method for a `path` option (docs/PROTOCOLS.md
// "grpc: method and path"): empty → "/GostTunel/Tunnel"; "/foo" → "/foo/Tunnel"; "/a/b" → "/a/b";
// "/a/b/c" → "/a/b-c".
std::string method_path(std::string_view path);

// Protobuf base-128 varint; `out` needs 10 bytes. Returns the bytes written.
std::size_t put_varint(std::uint8_t* out, std::uint64_t v);

// Writes the message prefix and the Chunk field header for `n` data bytes (n == 0: an empty
// message, just the prefix). Returns its size (≤ kMaxChunkHeader); the data follows it.
std::size_t chunk_header(std::uint8_t* out, std::size_t n);
// A whole message carrying `data` (tests and small writes).
std::string encode_chunk(std::string_view data);

// Streaming decoder of Chunk messages: yields the bytes of every `data` field in order, skips
// unknown fields, and fails (for good) on malformed framing or protobuf, a compressed message, or
// a message larger than `max_message`. It keeps no data: only a few counters.
class ChunkDecoder {
 public:
  explicit ChunkDecoder(std::size_t max_message = kMaxMessage) : max_message_(max_message) {}

  // Decodes `n` bytes at `in`, writing the data bytes to `out` (memmove semantics: `out` may be
  // `in`, decoding in place, since the output never overtakes the input). Returns the number of
  // data bytes written; 0 and failed() on an error.
  std::size_t decode(const std::uint8_t* in, std::size_t n, std::uint8_t* out);

  // Between two messages: the stream may end here.
  bool at_boundary() const { return state_ == State::prefix && have_ == 0; }
  bool failed() const { return state_ == State::failed; }
  // For a failure: the gRPC status and message a server answers with (grpc-go's wording).
  int status() const { return status_; }
  const std::string& message() const { return message_; }

 private:
  enum class State { prefix, tag, length, data, skip, skip_varint, failed };
  void fail(int status, std::string message);
  void field_done();

  std::size_t max_message_;
  State state_ = State::prefix;
  std::uint8_t prefix_[kPrefixSize] = {};
  std::size_t have_ = 0;          // prefix bytes collected
  std::size_t message_left_ = 0;  // bytes of the current message not yet decoded
  std::uint64_t varint_ = 0;
  unsigned shift_ = 0;
  bool field1_ = false;           // the length-delimited field being read is `data`
  std::uint64_t field_left_ = 0;  // data / skip bytes left in the current field
  int status_ = kOk;
  std::string message_;
};

}  // namespace gost::proto::grpc
