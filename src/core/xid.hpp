// Session ids in the xid format GOST logs as `sid`: 12 bytes (time, machine, pid, counter) in
// 20 lowercase base32hex characters, e.g. "9m4e2mr0ui3e8a215n4g".
#pragma once

#include <string>

namespace gost {
std::string new_xid();
}
