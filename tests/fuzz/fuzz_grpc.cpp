// libFuzzer target: the gRPC tunnel framing (proto/grpc). The decoder runs on the input once in a
// single read and once in reads of sizes taken from the input's first bytes; both must give the
// same data and the same verdict (in-place decoding must not depend on read boundaries), and the
// data re-encoded and decoded again must come back unchanged.
#include <cstdint>
#include <string>

#include "proto/grpc.hpp"

namespace {

namespace pg = gost::proto::grpc;

struct Outcome {
  std::string data;
  bool failed = false;
  int status = 0;
  bool boundary = false;
  bool operator==(const Outcome&) const = default;
};

Outcome run(std::string_view input, const std::uint8_t* sizes, std::size_t nsizes) {
  pg::ChunkDecoder d(4096);
  Outcome out;
  std::size_t off = 0, k = 0;
  while (off < input.size() && !d.failed()) {
    std::size_t step = nsizes ? std::size_t(sizes[k++ % nsizes]) + 1 : input.size();
    std::size_t n = std::min(step, input.size() - off);
    std::string buf(input.substr(off, n));
    off += n;
    auto* p = reinterpret_cast<std::uint8_t*>(buf.data());
    std::size_t got = d.decode(p, n, p);
    if (got > n) __builtin_trap();
    out.data.append(buf.data(), got);
  }
  out.failed = d.failed();
  out.status = d.failed() ? d.status() : 0;
  out.boundary = d.at_boundary();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t nsizes = size > 0 ? data[0] % 8 : 0;
  if (size < 1 + nsizes) return 0;
  const std::uint8_t* sizes = data + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1 + nsizes), size - 1 - nsizes);
  Outcome whole = run(input, nullptr, 0);
  Outcome split = run(input, sizes, nsizes);
  // A failure may be found after different amounts of data were produced; otherwise all agrees.
  if (whole.failed != split.failed || whole.status != split.status) __builtin_trap();
  if (!whole.failed && !(whole == split)) __builtin_trap();
  if (!whole.failed) {
    std::string wire = pg::encode_chunk(whole.data.substr(0, 4000));
    pg::ChunkDecoder d;
    std::string round = wire;
    auto* p = reinterpret_cast<std::uint8_t*>(round.data());
    std::size_t got = d.decode(p, round.size(), p);
    if (d.failed() || !d.at_boundary() ||
        std::string_view(round.data(), got) != whole.data.substr(0, 4000))
      __builtin_trap();
  }
  return 0;
}
