// Redis's configuration directives (Redis 7.0 to 8.0): every name a
// redis.conf may hold, and what a kvpool node does with each one it does not
// implement as an option of its own (server/config.cc's table comes first).
// A name in neither list is no directive at all: a typo, an error.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvpool {

// What ignoring a Redis directive means.
enum class RedisEffect {
  kNone,    // nothing a client or operator could tell: ignored quietly (logged once)
  kWarn,    // behaviour kvpool cannot honour: ignored with a warning saying so
  kRefuse,  // ignoring it would let in clients Redis would refuse: an error
};

struct RedisDirective {
  const char* name;
  const char* area;  // what it is about, as "persistence (kvpool is a cache and writes no files)"
  RedisEffect effect = RedisEffect::kNone;
  // Values (lower case, '|' between them) at which ignoring it changes
  // nothing, so kNone applies; nullptr = none such.
  const char* quiet = nullptr;
  // For kWarn / kRefuse: what kvpool cannot do.
  const char* cannot = nullptr;
};

// The directive named `name` (any case), or nullptr if Redis has none. A
// dotted name ("search.timeout") is a module's option, which Redis takes
// once the module is loaded.
const RedisDirective* FindRedisDirective(std::string_view name);
// Every known Redis directive.
const std::vector<RedisDirective>& RedisDirectives();

// What a given line of it means here: effect and the text to log.
struct RedisVerdict {
  RedisEffect effect;
  std::string note;
};
// `value`: the line's arguments joined by single spaces.
RedisVerdict JudgeRedisDirective(const RedisDirective& d, std::string_view value);

}  // namespace kvpool
