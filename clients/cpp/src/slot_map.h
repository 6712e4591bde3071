// Which node serves which slot, learned from CLUSTER SLOTS: a slot range's
// master is the copy that serves it (kvpool lists its primary, or the
// replica that took over). A node without cluster support (a single node)
// serves every slot.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "node_conn.h"

namespace kvpool::client {

class SlotMap {
 public:
  static constexpr int kSlots = 16384;
  // A map where `seed` serves every slot.
  explicit SlotMap(NodeAddr seed);
  // Asks `from` for CLUSTER SLOTS. Returns kOk (a single node gives the
  // one-node map), or kRpcFail with *error.
  [[nodiscard]] static int Load(const NodeAddr& from, const Options& opt, SlotMap* out,
                                std::string* error);
  // Index into nodes() of the node serving `key`, or -1 when the map names
  // none (no copy of its slot is up).
  int NodeOf(std::string_view key) const;
  const std::vector<NodeAddr>& nodes() const { return nodes_; }

 private:
  std::vector<NodeAddr> nodes_;
  static constexpr uint16_t kNone = 0xffff;
  std::vector<uint16_t> owner_;  // slot -> index into nodes_, or kNone
};

}  // namespace kvpool::client
