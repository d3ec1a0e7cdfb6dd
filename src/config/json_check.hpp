// A bounded check of untrusted JSON text before it is handed to a parser without such bounds.
#pragma once

#include <cstddef>
#include <string_view>

namespace gost::config::detail {

// True when `text` is one well-formed JSON object (RFC 8259) nested at most `max_depth` deep.
bool json_object_within(std::string_view text, std::size_t max_depth);

}  // namespace gost::config::detail
