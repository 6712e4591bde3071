#include "bench/workload.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace kvbench {

namespace {

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// "<c><n>\r\n" without printf (the generator formats millions per second).
void AppendHeader(char c, size_t n, std::string* out) {
  char buf[32];
  buf[0] = c;
  auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n);
  end[0] = '\r';
  end[1] = '\n';
  out->append(buf, static_cast<size_t>(end + 2 - buf));
}

void AppendBulkHeader(size_t len, std::string* out) { AppendHeader('$', len, out); }
void AppendArrayHeader(size_t n, std::string* out) { AppendHeader('*', n, out); }

void AppendBulk(std::string_view s, std::string* out) {
  AppendBulkHeader(s.size(), out);
  out->append(s);
  out->append("\r\n", 2);
}

std::string Describe(const redisReply* r) {
  if (r == nullptr) return "no reply";
  switch (r->type) {
    case REDIS_REPLY_STRING: {
      std::string s(r->str, std::min<size_t>(r->len, 24));
      for (char& c : s)
        if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '.';
      return "string of " + std::to_string(r->len) + " bytes \"" + s +
             (r->len > 24 ? "...\"" : "\"");
    }
    case REDIS_REPLY_ARRAY: return "array of " + std::to_string(r->elements);
    case REDIS_REPLY_INTEGER: return "integer " + std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "status " + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR: return "error " + std::string(r->str, r->len);
  }
  return "reply of type " + std::to_string(r->type);
}

std::string CheckValue(const Batch& b, size_t i, const Keyspace& ks, const redisReply* r) {
  const std::string key = ks.Key(b.ids[i]);
  if (b.present[i]) {
    if (r == nullptr || r->type != REDIS_REPLY_STRING)
      return "key " + key + ": expected its value, got " + Describe(r);
    if (!ks.ValueMatches(key, r->str, r->len))
      return "key " + key + ": wrong value (" + Describe(r) + ")";
    return "";
  }
  if (r == nullptr || r->type != REDIS_REPLY_NIL)
    return "key " + key + " (never written): expected nil, got " + Describe(r);
  return "";
}

std::string CheckStatus(const redisReply* r, const char* want) {
  if (r == nullptr || r->type != REDIS_REPLY_STATUS || std::string(r->str, r->len) != want)
    return std::string("expected +") + want + ", got " + Describe(r);
  return "";
}

}  // namespace

uint64_t HashBytes(std::string_view s, uint64_t seed) {
  // FNV-1a over the bytes, then a strong finaliser.
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix(seed);
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix(h);
}

Keyspace::Keyspace(std::string prefix, int64_t key_count, int value_size, uint64_t seed)
    : prefix_(std::move(prefix)), key_count_(key_count), value_size_(value_size), seed_(seed) {
  pattern_.resize(static_cast<size_t>(value_size) + kSlack);
  Rng rng(seed * 0x2545F4914F6CDD1DULL + 17);
  static const char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  for (size_t i = 0; i < pattern_.size(); i += 8) {
    uint64_t r = rng.Next();
    for (size_t k = 0; k < 8 && i + k < pattern_.size(); ++k, r >>= 6)
      pattern_[i + k] = kAlphabet[r & 63];
  }
}

void Keyspace::SetIdMap(std::vector<uint64_t> present, std::vector<uint64_t> absent) {
  present_map_ = std::move(present);
  absent_map_ = std::move(absent);
}

uint64_t Keyspace::PresentId(int64_t i) const {
  return present_map_.empty() ? static_cast<uint64_t>(i) : present_map_[static_cast<size_t>(i)];
}

uint64_t Keyspace::AbsentId(int64_t j) const {
  if (present_map_.empty()) return static_cast<uint64_t>(key_count_ + j);
  return absent_map_[static_cast<size_t>(j) % absent_map_.size()];
}

void Keyspace::AppendKey(uint64_t id, std::string* out) const {
  out->append(prefix_);
  char digits[kIdDigits];
  for (int i = kIdDigits - 1; i >= 0; --i, id /= 10) digits[i] = static_cast<char>('0' + id % 10);
  out->append(digits, kIdDigits);
}

std::string Keyspace::Key(uint64_t id) const {
  std::string s;
  AppendKey(id, &s);
  return s;
}

void Keyspace::WriteValue(uint64_t h, char* out) const {
  static const char kHex[] = "0123456789abcdef";
  char header[kHeader];
  for (int i = 0; i < kHeader; ++i) header[i] = kHex[(h >> (60 - 4 * i)) & 15];
  const size_t n = static_cast<size_t>(value_size_);
  const size_t head = std::min<size_t>(kHeader, n);
  std::memcpy(out, header, head);
  if (n > head) std::memcpy(out + head, pattern_.data() + (h % kSlack), n - head);
}

void Keyspace::AppendValue(std::string_view key, std::string* out) const {
  const uint64_t h = ValueHash(key);  // before resizing: key may point into *out
  const size_t at = out->size();
  out->resize(at + static_cast<size_t>(value_size_));
  WriteValue(h, out->data() + at);
}

std::string Keyspace::Value(std::string_view key) const {
  std::string v;
  AppendValue(key, &v);
  return v;
}

bool Keyspace::ValueMatches(std::string_view key, const char* data, size_t len) const {
  if (len != static_cast<size_t>(value_size_)) return false;
  const uint64_t h = ValueHash(key);
  static const char kHex[] = "0123456789abcdef";
  const size_t head = std::min<size_t>(kHeader, len);
  for (size_t i = 0; i < head; ++i)
    if (data[i] != kHex[(h >> (60 - 4 * i)) & 15]) return false;
  return len == head || std::memcmp(data + head, pattern_.data() + (h % kSlack), len - head) == 0;
}

void PickBatch(Command cmd, int n, double hit_ratio, const Keyspace& ks, Rng* rng, Batch* out) {
  out->ids.clear();
  out->present.clear();
  if (cmd == Command::kPing) return;
  const int64_t kc = ks.key_count();
  if (IsWrite(cmd)) {
    for (int i = 0; i < n; ++i) {
      out->ids.push_back(ks.PresentId(static_cast<int64_t>(rng->Below(kc))));
      out->present.push_back(1);
    }
    return;
  }
  out->present.assign(static_cast<size_t>(n), 0);
  if (n == 1) {
    out->present[0] = rng->Unit() < hit_ratio ? 1 : 0;
  } else {
    const int hits = static_cast<int>(std::lround(hit_ratio * n));
    for (int i = 0; i < hits; ++i) out->present[static_cast<size_t>(i)] = 1;
    for (int i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(out->present[static_cast<size_t>(i)], out->present[rng->Below(i + 1)]);
  }
  if (!ks.has_absent())
    for (auto& p : out->present) p = 1;
  for (int i = 0; i < n; ++i) {
    const int64_t k = static_cast<int64_t>(rng->Below(kc));
    out->ids.push_back(out->present[static_cast<size_t>(i)] ? ks.PresentId(k) : ks.AbsentId(k));
  }
}

void AppendCommand(Command cmd, const Batch& b, const Keyspace& ks, std::string* out) {
  const bool with_values = IsWrite(cmd);
  const size_t keys = b.ids.size();
  AppendArrayHeader(1 + keys * (with_values ? 2 : 1), out);
  switch (cmd) {
    case Command::kGet: AppendBulk("GET", out); break;
    case Command::kSet: AppendBulk("SET", out); break;
    case Command::kMget: AppendBulk("MGET", out); break;
    case Command::kMset: AppendBulk("MSET", out); break;
    case Command::kMexists: AppendBulk("MEXISTS", out); break;
    case Command::kExists: AppendBulk("EXISTS", out); break;
    case Command::kPing: AppendBulk("PING", out); break;
  }
  const size_t klen = ks.key_len();
  std::string key_header, value_header;
  AppendBulkHeader(klen, &key_header);
  AppendBulkHeader(static_cast<size_t>(ks.value_size()), &value_header);
  const size_t per_key = key_header.size() + klen + 2 +
                         (with_values ? value_header.size() + ks.value_size() + 2 : 0);
  out->reserve(out->size() + keys * per_key);
  for (size_t i = 0; i < keys; ++i) {
    out->append(key_header);
    const size_t key_at = out->size();
    ks.AppendKey(b.ids[i], out);
    out->append("\r\n", 2);
    if (with_values) {
      out->append(value_header);
      ks.AppendValue(std::string_view(out->data() + key_at, klen), out);
      out->append("\r\n", 2);
    }
  }
}

void AppendLoadCommand(int64_t first, int64_t count, const Keyspace& ks, std::string* out) {
  Batch b;
  for (int64_t i = first; i < first + count; ++i) {
    b.ids.push_back(ks.PresentId(i));
    b.present.push_back(1);
  }
  AppendCommand(Command::kMset, b, ks, out);
}

std::string CheckReply(Command cmd, const Batch& b, const Keyspace& ks, const redisReply* r) {
  if (r == nullptr) return "no reply";
  if (r->type == REDIS_REPLY_ERROR) return "error reply: " + std::string(r->str, r->len);
  switch (cmd) {
    case Command::kPing: return CheckStatus(r, "PONG");
    case Command::kSet:
    case Command::kMset: return CheckStatus(r, "OK");
    case Command::kGet: return CheckValue(b, 0, ks, r);
    case Command::kExists: {
      if (r->type != REDIS_REPLY_INTEGER || r->integer != b.present_count())
        return "EXISTS of " + std::to_string(b.ids.size()) + " keys: expected integer " +
               std::to_string(b.present_count()) + ", got " + Describe(r);
      return "";
    }
    case Command::kMget:
    case Command::kMexists: {
      if (r->type != REDIS_REPLY_ARRAY || r->elements != b.ids.size())
        return "expected array of " + std::to_string(b.ids.size()) + ", got " + Describe(r);
      for (size_t i = 0; i < b.ids.size(); ++i) {
        const redisReply* e = r->element[i];
        if (cmd == Command::kMget) {
          std::string err = CheckValue(b, i, ks, e);
          if (!err.empty()) return "element " + std::to_string(i) + ": " + err;
        } else if (e == nullptr || e->type != REDIS_REPLY_INTEGER || e->integer != b.present[i]) {
          return "element " + std::to_string(i) + " (key " + ks.Key(b.ids[i]) + "): expected " +
                 std::to_string(b.present[i]) + ", got " + Describe(e);
        }
      }
      return "";
    }
  }
  return "unknown command";
}

}  // namespace kvbench
