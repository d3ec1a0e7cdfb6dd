#include "core/component.hpp"

#include <fmt/format.h>

namespace gost {

void reject_unsupported(const config::Metadata& md, std::initializer_list<std::string_view> keys,
                        std::string_view where) {
  for (auto key : keys)
    if (md.contains(key))
      throw config::ConfigError(
          fmt::format("{}: option \"{}\" is not supported by this implementation", where, key));
}

}  // namespace gost
