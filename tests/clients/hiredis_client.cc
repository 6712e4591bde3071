// hiredis_client: a black-box check of MSET / MGET / MEXISTS through hiredis,
// the C client most native integrations (and many language bindings) use.
//
//   hiredis_client HOST PORT [--password PW] [--no-mexists]
//
// Checks binary values (embedded NUL, CR/LF, zero length, all 256 byte
// values, 1 MiB), binary keys, reply alignment with the requested key order,
// duplicate and missing keys, large batches, pipelined batches and arity
// errors. Every key carries a per-run prefix and is deleted at the end.
// Prints "OK: N checks" and exits 0; on the first mismatch prints what was
// expected and what came back, and exits 1 (2 if it cannot connect).
//
// --no-mexists skips MEXISTS (for redis-server, which lacks the command).

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using Bytes = std::string;  // binary-safe

int g_checks = 0;
redisContext* g_ctx = nullptr;

std::string printable(const Bytes& s, size_t limit = 64) {
  std::ostringstream o;
  o << '"';
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 32 && c < 127 && c != '"' && c != '\\') {
      o << static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      o << buf;
    }
  }
  if (s.size() > limit) o << "...";
  o << "\" (" << s.size() << " bytes)";
  return o.str();
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL after %d checks: %s\n", g_checks, what.c_str());
  std::exit(1);
}

void check(bool cond, const std::string& what) {
  ++g_checks;
  if (!cond) fail(what);
}

std::string describe(const redisReply* r) {
  if (!r) return "no reply (connection error)";
  switch (r->type) {
    case REDIS_REPLY_STRING: return "string " + printable(Bytes(r->str, r->len));
    case REDIS_REPLY_STATUS: return "status " + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR: return "error " + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return "integer " + std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_ARRAY: return "array of " + std::to_string(r->elements);
    default: return "reply type " + std::to_string(r->type);
  }
}

struct Reply {
  redisReply* r = nullptr;
  explicit Reply(void* p) : r(static_cast<redisReply*>(p)) {}
  ~Reply() { if (r) freeReplyObject(r); }
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  const redisReply* operator->() const { return r; }
  const redisReply* get() const { return r; }
};

void args_of(const std::vector<Bytes>& argv, std::vector<const char*>& p, std::vector<size_t>& l) {
  p.clear();
  l.clear();
  for (const auto& a : argv) {
    p.push_back(a.data());
    l.push_back(a.size());
  }
}

std::string name_of(const std::vector<Bytes>& argv) {
  std::string s;
  for (size_t i = 0; i < argv.size() && i < 4; ++i) s += (i ? " " : "") + printable(argv[i], 24);
  if (argv.size() > 4) s += " ... (" + std::to_string(argv.size()) + " args)";
  return s;
}

redisReply* command(const std::vector<Bytes>& argv) {
  std::vector<const char*> p;
  std::vector<size_t> l;
  args_of(argv, p, l);
  auto* r = static_cast<redisReply*>(redisCommandArgv(g_ctx, static_cast<int>(argv.size()), p.data(), l.data()));
  if (!r) fail("I/O error on " + name_of(argv) + ": " + g_ctx->errstr);
  return r;
}

void expect_status(const std::vector<Bytes>& argv, const char* status) {
  Reply r(command(argv));
  check(r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == status,
        name_of(argv) + ": expected status " + status + ", got " + describe(r.get()));
}

void expect_error(const std::vector<Bytes>& argv, const std::string& msg) {
  Reply r(command(argv));
  check(r->type == REDIS_REPLY_ERROR && std::string(r->str, r->len) == msg,
        name_of(argv) + ": expected error '" + msg + "', got " + describe(r.get()));
}

// Expected value per key: present (with bytes) or missing.
struct Want {
  bool present;
  Bytes value;
};

void check_mget_reply(const redisReply* r, const std::vector<Bytes>& keys, const std::vector<Want>& want,
                      const std::string& ctx) {
  check(r && r->type == REDIS_REPLY_ARRAY, ctx + ": expected an array, got " + describe(r));
  check(r->elements == keys.size(), ctx + ": expected " + std::to_string(keys.size()) + " elements, got " +
                                        std::to_string(r->elements));
  for (size_t i = 0; i < keys.size(); ++i) {
    const redisReply* e = r->element[i];
    std::string where = ctx + " element " + std::to_string(i) + " (key " + printable(keys[i], 32) + ")";
    if (want[i].present) {
      check(e->type == REDIS_REPLY_STRING, where + ": expected " + printable(want[i].value) + ", got " + describe(e));
      check(static_cast<size_t>(e->len) == want[i].value.size() &&
                std::memcmp(e->str, want[i].value.data(), want[i].value.size()) == 0,
            where + ": expected " + printable(want[i].value) + ", got " + describe(e));
    } else {
      check(e->type == REDIS_REPLY_NIL, where + ": expected nil, got " + describe(e));
    }
  }
}

void check_mexists_reply(const redisReply* r, const std::vector<Bytes>& keys, const std::vector<Want>& want,
                         const std::string& ctx) {
  check(r && r->type == REDIS_REPLY_ARRAY, ctx + ": expected an array, got " + describe(r));
  check(r->elements == keys.size(), ctx + ": expected " + std::to_string(keys.size()) + " elements, got " +
                                        std::to_string(r->elements));
  for (size_t i = 0; i < keys.size(); ++i) {
    const redisReply* e = r->element[i];
    long long expect = want[i].present ? 1 : 0;
    check(e->type == REDIS_REPLY_INTEGER && e->integer == expect,
          ctx + " element " + std::to_string(i) + " (key " + printable(keys[i], 32) + "): expected integer " +
              std::to_string(expect) + ", got " + describe(e));
  }
}

std::vector<Bytes> with_cmd(const char* cmd, const std::vector<Bytes>& keys) {
  std::vector<Bytes> argv{cmd};
  argv.insert(argv.end(), keys.begin(), keys.end());
  return argv;
}

// What the command line asked for.
struct Options {
  const char* host = nullptr;
  int port = 0;
  bool mexists = true;
  const char* password = nullptr;
};

// Fills `opt` from argv; on a usage error prints why and returns false.
bool parse_args(int argc, char** argv, Options& opt) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s HOST PORT [--password PW] [--no-mexists]\n", argv[0]);
    return false;
  }
  opt.host = argv[1];
  opt.port = std::atoi(argv[2]);
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-mexists") == 0) {
      opt.mexists = false;
    } else if (std::strcmp(argv[i], "--password") == 0 && i + 1 < argc) {
      opt.password = argv[++i];
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return false;
    }
  }
  return true;
}

// Connects g_ctx and authenticates if asked; on a connect error prints why
// and returns false (an AUTH mismatch fails like any other check).
bool connect_and_auth(const Options& opt) {
  timeval tv{10, 0};
  g_ctx = redisConnectWithTimeout(opt.host, opt.port, tv);
  if (!g_ctx || g_ctx->err) {
    std::fprintf(stderr, "cannot connect to %s:%d: %s\n", opt.host, opt.port,
                 g_ctx ? g_ctx->errstr : "out of memory");
    return false;
  }
  redisSetTimeout(g_ctx, tv);
  if (opt.password) expect_status({"AUTH", opt.password}, "OK");
  return true;
}

// The run's state: the key prefix, what the server should hold (kv, in
// write order) and the keys of the first MSET in their original order.
struct Run {
  Bytes prefix;
  bool mexists = true;
  std::vector<std::pair<Bytes, Bytes>> kv;
  std::vector<Bytes> in_order;

  Want value_of(const Bytes& k) const {
    for (auto& [kk, vv] : kv)
      if (kk == k) return {true, vv};
    return {false, {}};
  }

  std::vector<Want> wants(const std::vector<Bytes>& keys) const {
    std::vector<Want> want;
    for (auto& k : keys) want.push_back(value_of(k));
    return want;
  }

  // MGET (and MEXISTS unless skipped) of `keys`, checked against kv.
  void run_batch(const std::vector<Bytes>& keys, const std::string& ctx) const {
    std::vector<Want> want = wants(keys);
    {
      Reply r(command(with_cmd("MGET", keys)));
      check_mget_reply(r.get(), keys, want, "MGET " + ctx);
    }
    if (mexists) {
      Reply r(command(with_cmd("MEXISTS", keys)));
      check_mexists_reply(r.get(), keys, want, "MEXISTS " + ctx);
    }
  }
};

// Binary values (NUL, CR/LF, empty, all 256 bytes, 1 MiB) and binary keys.
std::vector<std::pair<Bytes, Bytes>> binary_pairs(const Bytes& P) {
  Bytes all256;
  for (int i = 0; i < 256; ++i) all256.push_back(static_cast<char>(i));
  Bytes mib(1 << 20, '\0');
  for (size_t i = 0; i < mib.size(); ++i) mib[i] = static_cast<char>((i * 31 + (i >> 8)) & 0xff);
  return {
      {P + "nul", Bytes("a\0b\0", 4)},
      {P + "empty", Bytes()},
      {P + "crlf", "line\r\nnext\r\n"},
      {P + "all256", all256},
      {P + "mib", mib},
      {P + Bytes("key\0with\0nul", 12), "v-nul-key"},
      {P + "key\r\nwith crlf", "v-crlf-key"},
      {P + "plain", "plain value"},
  };
}

// MSET of the binary pairs, then MGET/MEXISTS in several orders.
void check_binary_mset(Run& run) {
  const Bytes& P = run.prefix;
  run.kv = binary_pairs(P);
  std::vector<Bytes> mset{"MSET"};
  for (auto& [k, v] : run.kv) {
    mset.push_back(k);
    mset.push_back(v);
  }
  expect_status(mset, "OK");

  for (auto& [k, v] : run.kv) run.in_order.push_back(k);
  run.run_batch(run.in_order, "in MSET order");
  std::vector<Bytes> reversed(run.in_order.rbegin(), run.in_order.rend());
  run.run_batch(reversed, "reversed");
  std::vector<Bytes> mixed = {P + "missing1", P + "mib", P + "nul", P + "missing2", P + "nul",
                              P + "empty", P + "mib", P + "missing1", P + "all256", P + ""};
  run.run_batch(mixed, "with duplicates and missing keys");
  run.run_batch({P + "nope"}, "single missing key");
  run.run_batch({P + "empty"}, "single empty value");
}

// Single-key commands agree with the batch view.
void check_single_key_commands(const Run& run) {
  const Bytes& P = run.prefix;
  {
    Reply r(command({"GET", P + "nul"}));
    check(r->type == REDIS_REPLY_STRING && r->len == 4 && std::memcmp(r->str, "a\0b\0", 4) == 0,
          "GET nul: got " + describe(r.get()));
  }
  {
    Reply r(command({"STRLEN", P + "mib"}));
    check(r->type == REDIS_REPLY_INTEGER && r->integer == (1 << 20), "STRLEN mib: got " + describe(r.get()));
  }
  {
    Reply r(command({"EXISTS", P + "empty", P + "empty", P + "missing"}));
    check(r->type == REDIS_REPLY_INTEGER && r->integer == 2, "EXISTS empty empty missing: got " + describe(r.get()));
  }
}

// A 512-key batch (every third key missing) read back in shuffled order.
void check_large_batch(Run& run) {
  std::mt19937 rng(12345);
  std::vector<Bytes> many;
  std::vector<Bytes> mset_many{"MSET"};
  for (int i = 0; i < 512; ++i) {
    Bytes k = run.prefix + "block:" + std::to_string(i);
    many.push_back(k);
    if (i % 3 != 0) {
      Bytes v = "value-" + std::to_string(i) + Bytes(static_cast<size_t>(i % 7), '\0');
      mset_many.push_back(k);
      mset_many.push_back(v);
      run.kv.emplace_back(k, v);
    }
  }
  expect_status(mset_many, "OK");
  std::shuffle(many.begin(), many.end(), rng);
  many.push_back(many[0]);
  many.push_back(many[1]);
  run.run_batch(many, "512 shuffled keys");
}

void append_command(const std::vector<Bytes>& argv) {
  std::vector<const char*> p;
  std::vector<size_t> l;
  args_of(argv, p, l);
  redisAppendCommandArgv(g_ctx, static_cast<int>(argv.size()), p.data(), l.data());
}

// The next pipelined reply; an I/O error fails the run with `what`.
redisReply* next_reply(const char* what) {
  void* raw = nullptr;
  if (redisGetReply(g_ctx, &raw) != REDIS_OK) fail(std::string(what) + g_ctx->errstr);
  return static_cast<redisReply*>(raw);
}

// Pipelined batches: replies come back in request order.
void check_pipelined(const Run& run) {
  std::vector<std::vector<Bytes>> batches;
  for (int b = 0; b < 20; ++b) {
    std::vector<Bytes> keys;
    for (int j = 0; j < 25; ++j) keys.push_back(run.prefix + "block:" + std::to_string((b * 37 + j * 11) % 600));
    batches.push_back(keys);
  }
  for (auto& keys : batches) {
    append_command(with_cmd("MGET", keys));
    if (run.mexists) append_command(with_cmd("MEXISTS", keys));
  }
  for (size_t b = 0; b < batches.size(); ++b) {
    std::vector<Want> want = run.wants(batches[b]);
    Reply r(next_reply("pipelined MGET: "));
    check_mget_reply(r.get(), batches[b], want, "pipelined MGET #" + std::to_string(b));
    if (run.mexists) {
      Reply r2(next_reply("pipelined MEXISTS: "));
      check_mexists_reply(r2.get(), batches[b], want, "pipelined MEXISTS #" + std::to_string(b));
    }
  }
}

// Overwrite with MSET: the last pair wins, other keys are untouched.
void check_overwrite(Run& run) {
  const Bytes& P = run.prefix;
  expect_status({"MSET", P + "plain", "first", P + "plain", "second", P + "empty", Bytes("\0", 1)}, "OK");
  for (auto& [k, v] : run.kv) {
    if (k == P + "plain") v = "second";
    if (k == P + "empty") v = Bytes("\0", 1);
  }
  run.run_batch(run.in_order, "after overwrite");
}

// Arity errors, and a rejected MSET writes nothing.
void check_arity_errors(const Run& run) {
  const Bytes& P = run.prefix;
  expect_error({"MSET", P + "odd"}, "ERR wrong number of arguments for 'mset' command");
  expect_error({"MSET", P + "a", "1", P + "odd"}, "ERR wrong number of arguments for 'mset' command");
  expect_error({"MGET"}, "ERR wrong number of arguments for 'mget' command");
  if (run.mexists) expect_error({"MEXISTS"}, "ERR wrong number of arguments for 'mexists' command");
  run.run_batch({P + "odd", P + "a"}, "after rejected MSET");
}

// DEL of every key written; afterwards none of them reads back.
void cleanup(Run& run) {
  {
    std::vector<Bytes> del{"DEL"};
    for (auto& [k, v] : run.kv) del.push_back(k);
    Reply r(command(del));
    check(r->type == REDIS_REPLY_INTEGER && static_cast<size_t>(r->integer) == run.kv.size(),
          "DEL of all keys: expected " + std::to_string(run.kv.size()) + ", got " + describe(r.get()));
  }
  run.kv.clear();
  run.run_batch(run.in_order, "after DEL");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_args(argc, argv, opt)) return 2;
  if (!connect_and_auth(opt)) return 2;

  Run run;
  run.prefix = "hiredis:" + std::to_string(getpid()) + ":";
  run.mexists = opt.mexists;
  check_binary_mset(run);
  check_single_key_commands(run);
  check_large_batch(run);
  check_pipelined(run);
  check_overwrite(run);
  check_arity_errors(run);
  cleanup(run);

  redisFree(g_ctx);
  std::printf("OK: %d checks%s\n", g_checks, run.mexists ? "" : " (MEXISTS skipped)");
  return 0;
}
