// One catch-up (sync.cc) or merge (merge.cc) in progress: the requester's
// side, on lane 0, alive until its last call has answered.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/pool/pool_impl.h"

namespace kvpool::pool {

struct SyncOp : std::enable_shared_from_this<SyncOp> {
  Pool* pool;
  Pool::Impl* impl;
  storage::Store* store;
  transport::Transport* transport;
  uint64_t flush_seq;  // at start: a flush since makes the pass start over
  bool whole = false;  // a whole catch-up (not keys only)
  // A whole catch-up's copies that were down and may hold data (its slots
  // with no source): merged from once back (SyncStats::merge_pending).
  std::vector<int> missed;
  int merge_node = -1;  // >= 0: a merge from this copy (MergeTick), not a catch-up
  int pending = 1;
  bool failed = false;
  struct Source {
    int node;
    std::string bitmap;
    int db = 0;
    uint64_t cursor = 0;
  };
  std::vector<Source> sources;
  std::vector<int> slot_source;  // per slot, -1 = no source (or not ours)
  int round = 0;
  uint64_t round_seq = 0;  // touches after this are newer than the round's answers

  struct Entry {
    int db;
    std::string key;
    uint8_t state;
    int64_t expire;
    uint64_t total, sent, version;
  };

  int64_t Timeout() const { return pool->options_.timeout_ms; }
  void Done() {
    if (--pending > 0) return;
    if (merge_node >= 0) return impl->MergeDone(merge_node, !failed);
    if (failed) return impl->SyncDone(false);
    NextRound();
  }
  void Scan(size_t i);
  void NextRound();
  // Stores e (value in `value`), unless the key was written here after
  // `since` (touch sequence) or a flush happened since the request.
  // exact: a missing entry deletes the key (last pass); else it is skipped,
  // and a value is stored only over an older version (a source that
  // missed writes this node kept, or a merge, never undoes them).
  void Apply(const Entry& e, std::string_view value, uint64_t since, bool exact);
  // Reads entries (and their values from bulk) from r; large values are
  // fetched in chunks, then applied.
  bool ReadEntries(Reader& r, std::string_view bulk, int node, std::vector<Entry>& es,
                   uint64_t since, bool exact);
  void FetchLarge(int node, Entry e, std::shared_ptr<std::string> buf, uint64_t off,
                  uint64_t since, bool exact);
};

}  // namespace kvpool::pool
