// Placement as in Redis Cluster: 16384 slots, CRC16 (XMODEM) of the key or
// of its {hashtag}; slots spread evenly over the nodes in list order, so
// every node computes the same table from the same pool-nodes list.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace kvpool::pool {

inline constexpr int kSlots = 16384;

uint16_t Crc16(const char* buf, size_t len);
// Redis's keyHashSlot: the hashtag is the text between the first '{' and the
// next '}' when it is non-empty; otherwise the whole key.
int KeySlot(std::string_view key);

class SlotTable {
 public:
  // Node i of n owns slots [i*16384/n, (i+1)*16384/n).
  explicit SlotTable(int nodes);
  int nodes() const { return nodes_; }
  int OwnerOfSlot(int slot) const { return owner_[slot]; }
  int OwnerOfKey(std::string_view key) const { return owner_[KeySlot(key)]; }
  // Inclusive ranges [first, last] owned by `node`.
  std::vector<std::pair<int, int>> RangesOf(int node) const;

 private:
  int nodes_;
  std::vector<uint16_t> owner_;
};

}  // namespace kvpool::pool
