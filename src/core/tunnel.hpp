// The last step of every proxy handler: relay the client and the stream to its target, with
// GOST's log lines ("<remote> <-> <target>", then "<remote> >-< <target>" with the duration) and
// the byte counts added to the connection's totals.
#pragma once

#include <string_view>

#include "core/component.hpp"
#include "core/relay.hpp"

namespace gost {

awaitable<void> relay_logged(Stream& client, Stream& upstream, std::string_view target,
                             ConnInfo& conn, RelayOptions options);

}  // namespace gost
