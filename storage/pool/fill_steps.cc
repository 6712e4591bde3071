#include "storage/pool/fill_steps.h"

#include <algorithm>
#include <cstring>

namespace kvpool::pool {

namespace {

struct Fill {
  std::vector<std::string_view> values;
  std::vector<storage::PendingItem> items;
  std::shared_ptr<const void> keep;
  FilledFn done;
  event_base* base;
  size_t step;
  size_t i = 0, off = 0;  // the value being copied, and how far

  // One step; false when every value is in.
  bool Step() {
    size_t budget = step;
    while (i < values.size()) {
      std::string_view v = values[i];
      size_t n = std::min(budget, v.size() - off);
      if (n > 0) memcpy(items[i].value_data() + off, v.data() + off, n);
      off += n;
      budget -= n;
      if (off == v.size()) {
        ++i;
        off = 0;
      } else if (budget == 0) {
        return true;
      }
    }
    return false;
  }

  static void Run(std::shared_ptr<Fill> f) {
    while (f->Step()) {
      auto* hold = new std::shared_ptr<Fill>(f);
      // 1 us, not 0: a zero timeout is run in this same pass of the loop
      // (libevent activates it at once), before any socket or timer.
      timeval soon{0, 1};
      auto next = [](evutil_socket_t, short, void* arg) {
        std::unique_ptr<std::shared_ptr<Fill>> h(static_cast<std::shared_ptr<Fill>*>(arg));
        Run(std::move(*h));
      };
      if (f->base != nullptr && event_base_once(f->base, -1, EV_TIMEOUT, next, hold, &soon) == 0)
        return;  // the next step on the next turn of the loop
      delete hold;  // no loop to yield to: on at once
    }
    f->done(f->items);
  }
};

}  // namespace

void FillInSteps(event_base* base, size_t step, std::vector<std::string_view> values,
                 std::vector<storage::PendingItem> items, std::shared_ptr<const void> keep,
                 FilledFn done) {
  auto f = std::make_shared<Fill>();
  f->values = std::move(values);
  f->items = std::move(items);
  f->keep = std::move(keep);
  f->done = std::move(done);
  f->base = base;
  f->step = std::max<size_t>(1, step);
  Fill::Run(std::move(f));
}

}  // namespace kvpool::pool
