// Copying large values into prepared items a step per turn of a loop, so
// that no turn spends long on one copy (the kernel faults in and zeroes the
// pages the copy first touches: a 300 MB value took a second in one turn).
// Used by the pool's local writes (SetOp) and by a single node's SET/MSET.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "storage/segment/store.h"

namespace kvpool::pool {

using FilledFn = std::function<void(std::vector<storage::PendingItem>&)>;

// Copies values[i] into items[i].value_data() (items[i] sized for it), at
// most `step` bytes per turn of `base`'s loop, then runs done(items) on
// that loop. Without a loop (base null) it copies everything at once and
// runs done before returning. `keep` holds whatever the values' bytes
// live in until done has run.
void FillInSteps(event_base* base, size_t step, std::vector<std::string_view> values,
                 std::vector<storage::PendingItem> items, std::shared_ptr<const void> keep,
                 FilledFn done);

}  // namespace kvpool::pool
