// What the load generator sends and what it expects back, apart from any I/O:
// key names, the value each key must hold, the keys of each command, the
// RESP encoding of a command, and the check of a reply against expectations.
//
// The value of a key derives from the key's name and the seed alone, so any
// run (or any node of a pool) with the same seed and value size can check a
// value another run wrote.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "bench/loadgen_options.h"

namespace kvbench {

// splitmix64: small, fast, good enough to pick keys.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n ? Next() % n : 0; }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

uint64_t HashBytes(std::string_view s, uint64_t seed);

// Key names and values.
//   present key i (0 <= i < key_count): name of id PresentId(i)
//   absent key j  (0 <= j < key_count): name of id AbsentId(j), never written
// Without an id map, PresentId(i) = i and AbsentId(j) = key_count + j; names
// are prefix + 12-digit zero-padded id ("key:000000000042").
class Keyspace {
 public:
  Keyspace(std::string prefix, int64_t key_count, int value_size, uint64_t seed);

  // Restrict keys to chosen ids (e.g. those one pool node owns).
  // present.size() must be key_count; absent may be empty if never read.
  void SetIdMap(std::vector<uint64_t> present, std::vector<uint64_t> absent);

  int64_t key_count() const { return key_count_; }
  int value_size() const { return value_size_; }
  const std::string& prefix() const { return prefix_; }
  uint64_t PresentId(int64_t i) const;
  uint64_t AbsentId(int64_t j) const;
  bool has_absent() const { return present_map_.empty() || !absent_map_.empty(); }

  static constexpr int kIdDigits = 12;
  size_t key_len() const { return prefix_.size() + kIdDigits; }
  void AppendKey(uint64_t id, std::string* out) const;
  std::string Key(uint64_t id) const;

  // The value of key `key`: 16 hex digits of a hash of (key, seed), then a
  // slice of a seed-derived pattern chosen by the same hash (truncated to
  // value_size).
  void AppendValue(std::string_view key, std::string* out) const;
  std::string Value(std::string_view key) const;
  bool ValueMatches(std::string_view key, const char* data, size_t len) const;

 private:
  uint64_t ValueHash(std::string_view key) const { return HashBytes(key, seed_ ^ 0x5EEDULL); }
  void WriteValue(uint64_t h, char* out) const;

  std::string prefix_;
  int64_t key_count_;
  int value_size_;
  uint64_t seed_;
  std::string pattern_;  // value_size + kSlack bytes
  std::vector<uint64_t> present_map_, absent_map_;
  static constexpr int kHeader = 16;
  static constexpr uint64_t kSlack = 4093;
};

// The keys of one command, and whether each is expected present.
struct Batch {
  std::vector<uint64_t> ids;
  std::vector<uint8_t> present;
  int present_count() const {
    int n = 0;
    for (uint8_t p : present) n += p;
    return n;
  }
};

// Chooses the keys of each command:
//  - writes (SET, MSET): keys_per_batch present keys, uniformly at random;
//  - single-key reads (GET, EXISTS of 1 key): present with probability
//    hit_ratio;
//  - multi-key reads: exactly round(hit_ratio * keys_per_batch) present keys
//    at random positions, the others absent;
//  - PING: no keys.
void PickBatch(Command cmd, int keys_per_batch, double hit_ratio, const Keyspace& ks, Rng* rng,
               Batch* out);

// Appends the RESP encoding of `cmd` over the batch's keys (with their
// values for SET/MSET) to *out.
void AppendCommand(Command cmd, const Batch& b, const Keyspace& ks, std::string* out);

// Loading: MSET of present keys [first, first+count).
void AppendLoadCommand(int64_t first, int64_t count, const Keyspace& ks, std::string* out);

// Checks a reply to `cmd` over batch `b` (keys expected present must hold
// their value; absent keys must be missing). Returns "" if the reply is
// exactly right, else what is wrong.
std::string CheckReply(Command cmd, const Batch& b, const Keyspace& ks, const redisReply* r);

}  // namespace kvbench
