// Common Asio names used throughout the project.
#pragma once

#include <boost/asio.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

namespace gost {
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using error_code = boost::system::error_code;
using system_error = boost::system::system_error;

// Completion token: no exceptions, returns (error_code, results...) as a tuple.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

[[noreturn]] inline void throw_error(error_code ec, const char* what) { throw system_error(ec, what); }
}  // namespace gost
