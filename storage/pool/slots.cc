#include "storage/pool/slots.h"

#include <algorithm>
#include <cmath>

namespace kvpool::pool {

namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, as Redis's crc16.c.
// t[0] is the byte-at-a-time table; t[1] advances a byte through a second
// zero byte, so two bytes take two independent lookups (slicing by 2: the
// CRC is linear, t[0][x ^ y] = t[0][x] ^ t[0][y]). A key's slot is computed
// several times per write on a pool's path: the chain of dependent loads
// is what it costs.
struct Crc16Table {
  uint16_t t[2][256];
  constexpr Crc16Table() : t{} {
    for (int i = 0; i < 256; ++i) {
      uint16_t crc = static_cast<uint16_t>(i << 8);
      for (int b = 0; b < 8; ++b)
        crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
      t[0][i] = crc;
    }
    for (int i = 0; i < 256; ++i)
      t[1][i] = static_cast<uint16_t>((t[0][i] << 8) ^ t[0][t[0][i] >> 8]);
  }
};
constexpr Crc16Table kTable;

}  // namespace

uint16_t Crc16(const char* buf, size_t len) {
  const auto* p = reinterpret_cast<const uint8_t*>(buf);
  uint16_t crc = 0;
  size_t i = 0;
  for (; i + 2 <= len; i += 2)
    crc = static_cast<uint16_t>(kTable.t[1][(crc >> 8) ^ p[i]] ^ kTable.t[0][(crc & 0xff) ^ p[i + 1]]);
  if (i < len) crc = static_cast<uint16_t>((crc << 8) ^ kTable.t[0][(crc >> 8) ^ p[i]]);
  return crc;
}

int KeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1)
      return Crc16(key.data() + open + 1, close - open - 1) & (kSlots - 1);
  }
  return Crc16(key.data(), key.size()) & (kSlots - 1);
}

// The layout redis-cli --cluster create gives masters: ranges of about
// 16384/n slots, rounded as it rounds them, the last node taking the rest.
SlotTable::SlotTable(int nodes, int replicas)
    : nodes_(nodes), replicas_(std::clamp(replicas, 1, std::max(nodes, 1))), owner_(kSlots) {
  const double per_node = static_cast<double>(kSlots) / nodes;
  double cursor = 0;
  long first = 0;
  for (int i = 0; i < nodes; ++i) {
    long last = std::lround(cursor + per_node - 1);
    if (last > kSlots - 1 || i == nodes - 1) last = kSlots - 1;
    if (last < first) last = first;
    for (long s = first; s <= last; ++s) owner_[s] = static_cast<uint16_t>(i);
    first = last + 1;
    cursor += per_node;
  }
}

std::vector<std::pair<int, int>> SlotTable::RangesOf(int node) const {
  std::vector<std::pair<int, int>> out;
  for (int s = 0; s < kSlots; ++s) {
    if (owner_[s] != node) continue;
    if (!out.empty() && out.back().second == s - 1) out.back().second = s;
    else out.emplace_back(s, s);
  }
  return out;
}

std::vector<std::pair<int, int>> SlotTable::ReplicaRangesOf(int node) const {
  std::vector<std::pair<int, int>> out;
  for (int s = 0; s < kSlots; ++s) {
    if (owner_[s] == node || !HoldsSlot(node, s)) continue;
    if (!out.empty() && out.back().second == s - 1) out.back().second = s;
    else out.emplace_back(s, s);
  }
  return out;
}

int SlotTable::PrimarySlots(int node) const {
  return static_cast<int>(std::count(owner_.begin(), owner_.end(), node));
}

int SlotTable::ReplicaSlots(int node) const {
  int n = 0;
  for (int s = 0; s < kSlots; ++s) n += owner_[s] != node && HoldsSlot(node, s);
  return n;
}

}  // namespace kvpool::pool
