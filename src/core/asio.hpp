// Common Asio names used throughout the project.
#pragma once

#include <boost/asio.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <string>

namespace gost {
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using error_code = boost::system::error_code;
using system_error = boost::system::system_error;

// Completion token: no exceptions, returns (error_code, results...) as a tuple.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

[[noreturn]] inline void throw_error(error_code ec, const char* what) {
  throw system_error(ec, what);
}

// An exception's text for logs: a system_error without Boost's " [category:value]" suffix,
// e.g. "dial tcp 127.0.0.1:1: Connection refused".
inline std::string error_text(const std::exception& e) {
  std::string s = e.what();
  if (dynamic_cast<const system_error*>(&e) && !s.empty() && s.back() == ']')
    if (auto p = s.rfind(" ["); p != std::string::npos) s.erase(p);
  return s;
}

// The context a system_error was thrown with (its text without ": <message>"), for re-throwing
// it with more context in front without repeating the message.
inline std::string error_context(const system_error& e) {
  std::string s = error_text(e);
  std::string tail = ": " + e.code().message();
  if (s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0)
    s.erase(s.size() - tail.size());
  else if (s == e.code().message())
    s.clear();
  return s;
}
}  // namespace gost
