// Command-line options of the load generator (bench/loadgen.cc), parsed
// apart from any I/O so they can be tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvbench {

enum class Command { kGet, kSet, kMget, kMset, kMexists, kExists, kPing };

// "get" -> kGet, ...; false if the name is unknown.
bool ParseCommand(const std::string& name, Command* out);
const char* CommandName(Command c);
// Commands that take several keys (MGET, MSET, MEXISTS, EXISTS).
bool IsMultiKey(Command c);
// Commands that write (SET, MSET); they only touch keys of the loaded set.
bool IsWrite(Command c);

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  int clients = 50;        // connections, spread over the threads
  int threads = 1;         // event loops of the load generator
  int pipeline = 1;        // commands in flight per connection
  Command command = Command::kGet;
  int keys_per_batch = 1;  // keys per MGET/MSET/MEXISTS/EXISTS
  int value_size = 100;    // bytes
  int64_t key_count = 100000;  // keys 0..key_count-1 are "present" (loaded)
  double hit_ratio = 1.0;  // fraction of the keys read that are present
  double duration = 5;     // seconds; 0 = no timed run (e.g. --load only)
  int64_t requests = 0;    // if > 0: run this many commands instead of a duration
  bool load = false;       // pre-populate keys 0..key_count-1 with pipelined MSET
  int load_pipeline = 8;   // MSETs in flight per connection while loading
  int64_t load_batch_bytes = 256 * 1024;  // values per loading MSET (bounds keys/MSET)
  uint64_t seed = 1;       // values and key choice derive from it
  bool verify = false;     // check every reply against what was written
  std::string key_prefix = "kvb:";  // not redis-benchmark's "key:"
  std::string keys_owned_by;  // "host:port": only keys POOL KEYNODE places there
  double timeout = 30;     // seconds a connection may wait for a reply
  bool quiet = false;      // no human summary on stderr
};

// Parses argv[1..argc-1]. Accepts "--name value" and "--name=value"; flags
// (--load, --verify, --quiet) take no value. On error returns false with a
// one-line message in *error. "--help" returns false with *error empty.
bool ParseOptions(int argc, const char* const* argv, Options* out, std::string* error);
bool ParseOptions(const std::vector<std::string>& args, Options* out, std::string* error);

std::string Usage();

}  // namespace kvbench
