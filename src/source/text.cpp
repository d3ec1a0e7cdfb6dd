#include "source/text.hpp"

namespace gost::source {
namespace {

std::string_view trim(std::string_view s) {
  // Go's strings.TrimSpace for ASCII white space (what these files hold).
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Go's bufio.Scanner lines: split at '\n', a trailing '\r' dropped.
template <class F>
void each_line(std::string_view text, F f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

std::vector<std::string> parse_lines(std::string_view text) {
  std::vector<std::string> out;
  each_line(text, [&](std::string_view line) {
    if (auto n = line.find('#'); n != std::string_view::npos) line = line.substr(0, n);
    line = trim(line);
    if (!line.empty()) out.emplace_back(line);
  });
  return out;
}

Pairs parse_pairs(std::string_view text) {
  Pairs out;
  each_line(text, [&](std::string_view raw) {
    std::string line(raw);
    for (auto& c : line)
      if (c == '\t') c = ' ';
    std::string_view l = trim(line);
    if (!l.empty() && l.front() == '#') return;
    auto sp = l.find(' ');
    std::string_view user = trim(l.substr(0, sp));
    if (user.empty()) return;
    std::string_view pass =
        sp == std::string_view::npos ? std::string_view() : trim(l.substr(sp + 1));
    out.emplace_back(std::string(user), std::string(pass));
  });
  return out;
}

Data parse(std::string_view text, Format f) {
  Data d;
  if (f == Format::lines)
    d.lines = parse_lines(text);
  else
    d.pairs = parse_pairs(text);
  return d;
}

}  // namespace gost::source
