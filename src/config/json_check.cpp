// Boost.JSON (header-only: compiled into this one translation unit, so no library to link).
#include "config/json_check.hpp"

#include <boost/json/src.hpp>

namespace gost::config::detail {

bool json_object_within(std::string_view text, std::size_t max_depth) {
  boost::json::parse_options options;
  options.max_depth = max_depth;
  boost::json::error_code ec;
  auto value =
      boost::json::parse(boost::json::string_view(text.data(), text.size()), ec, {}, options);
  return !ec && value.is_object();
}

}  // namespace gost::config::detail
