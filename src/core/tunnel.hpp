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

// For a relay whose side `a` is the client: the bytes splice(2) moves past the client's socket
// count for the request's metrics. Settles the request's series first (ConnInfo::authenticated).
void count_client_splice(RelayOptions& options, ConnInfo& conn);

}  // namespace gost
