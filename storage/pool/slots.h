// Placement as in Redis Cluster: 16384 slots, CRC16 (XMODEM) of the key or
// of its {hashtag}; slots spread evenly over the nodes in list order, so
// every node computes the same table from the same pool-nodes list. With
// replicas, a slot's copies are its primary and the next nodes in ring order
// (primary+1, primary+2, ... modulo the node count), all distinct.
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
  // Contiguous ranges in list order, as redis-cli --cluster create lays out
  // masters (3 nodes: 0-5460, 5461-10922, 10923-16383).
  // `replicas` = copies per slot, primary included (1 = no copies); at
  // most `nodes`.
  explicit SlotTable(int nodes, int replicas = 1);
  int nodes() const { return nodes_; }
  int replicas() const { return replicas_; }
  int OwnerOfSlot(int slot) const { return owner_[slot]; }
  int OwnerOfKey(std::string_view key) const { return owner_[KeySlot(key)]; }
  // Inclusive ranges [first, last] owned by `node`.
  std::vector<std::pair<int, int>> RangesOf(int node) const;
  // The i-th copy of `slot` (0 = primary), i < replicas().
  int CopyOfSlot(int slot, int i) const { return (owner_[slot] + i) % nodes_; }
  // Whether `node` holds a copy of `slot` (as primary or replica).
  bool HoldsSlot(int node, int slot) const {
    return (node - owner_[slot] + nodes_) % nodes_ < replicas_;
  }
  // Inclusive ranges of the slots `node` holds as a replica (not primary).
  std::vector<std::pair<int, int>> ReplicaRangesOf(int node) const;
  // Slots `node` holds as primary / as replica.
  int PrimarySlots(int node) const;
  int ReplicaSlots(int node) const;

 private:
  int nodes_;
  int replicas_;
  std::vector<uint16_t> owner_;
};

}  // namespace kvpool::pool
