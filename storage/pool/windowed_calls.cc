// CallInWindow (requests.h): the calls of one large transfer, a few at a
// time.
#include <memory>

#include "storage/pool/requests.h"

namespace kvpool::pool {

namespace {

struct Window : std::enable_shared_from_this<Window> {
  WindowedCalls c;
  size_t next = 0, in_flight = 0;
  bool pumping = false, finished = false;
  Status error;

  // Issues calls while there is room. A call may end before Call returns
  // (its callback then finds pumping set and leaves the issuing to this
  // loop), so done runs once, from whichever frame sees the last one end.
  void Pump() {
    if (pumping) return;
    pumping = true;
    while (error.ok() && next < c.n && in_flight < c.window) {
      size_t i = next++;
      ++in_flight;
      auto self = shared_from_this();
      c.transport->Call(c.lane, c.node, c.make(i), c.timeout_ms,
                        [self, i](Status s, std::string_view reply, std::string_view bulk) {
                          s = self->c.reply(i, std::move(s), reply, bulk);
                          if (!s.ok() && self->error.ok()) self->error = std::move(s);
                          --self->in_flight;
                          self->Pump();
                        });
    }
    pumping = false;
    if (!finished && in_flight == 0 && (next == c.n || !error.ok())) {
      finished = true;
      auto done = std::move(c.done);
      done(error);
    }
  }
};

}  // namespace

void CallInWindow(WindowedCalls calls) {
  auto w = std::make_shared<Window>();
  w->c = std::move(calls);
  if (w->c.window == 0) w->c.window = 1;
  w->Pump();
}

}  // namespace kvpool::pool
