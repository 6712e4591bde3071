#include "slot_map.h"

#include <hiredis/hiredis.h>

#include <algorithm>

namespace kvpool::client {

namespace {

// CRC16-CCITT (XMODEM), polynomial 0x1021, bit by bit: Redis Cluster's.
uint16_t Crc16Xmodem(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc ^= static_cast<uint16_t>(c << 8);
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string Str(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? std::string(r->str, r->len)
                                                                       : std::string();
}

}  // namespace

int KeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return Crc16Xmodem(key) & (SlotMap::kSlots - 1);
}

SlotMap::SlotMap(NodeAddr seed) : nodes_{std::move(seed)}, owner_(kSlots, 0) {}

int SlotMap::NodeOf(std::string_view key) const {
  uint16_t o = owner_[KeySlot(key)];
  return o == kNone ? -1 : o;
}

int SlotMap::Load(const NodeAddr& from, const Options& opt, SlotMap* out, std::string* error) {
  redisContext* ctx = ConnectBlocking(from, opt.user, opt.password, opt.timeout_ms, error);
  if (ctx == nullptr) return kRpcFail;
  auto* r = static_cast<redisReply*>(redisCommand(ctx, "CLUSTER SLOTS"));
  if (r == nullptr) {
    *error = ctx->errstr;
    redisFree(ctx);
    return kRpcFail;
  }
  SlotMap map(from);
  if (r->type == REDIS_REPLY_ARRAY) {
    // A pool: slots no range names have no copy up.
    std::fill(map.owner_.begin(), map.owner_.end(), kNone);
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* range = r->element[i];
      if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
      const redisReply* master = range->element[2];
      if (range->element[0]->type != REDIS_REPLY_INTEGER || range->element[1]->type != REDIS_REPLY_INTEGER ||
          master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
          master->element[1]->type != REDIS_REPLY_INTEGER)
        continue;
      NodeAddr addr{Str(master->element[0]), static_cast<int>(master->element[1]->integer)};
      if (addr.host.empty() || addr.host == "?") addr.host = from.host;
      auto it = std::find(map.nodes_.begin(), map.nodes_.end(), addr);
      if (it == map.nodes_.end()) it = map.nodes_.insert(map.nodes_.end(), addr);
      auto idx = static_cast<uint16_t>(it - map.nodes_.begin());
      long long first = std::max(0LL, range->element[0]->integer);
      long long last = std::min<long long>(kSlots - 1, range->element[1]->integer);
      for (long long s = first; s <= last; ++s) map.owner_[s] = idx;
    }
  }
  // An error reply (no cluster support) leaves the one-node map.
  freeReplyObject(r);
  redisFree(ctx);
  *out = std::move(map);
  return kOk;
}

}  // namespace kvpool::client
