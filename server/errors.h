// Every error text the server sends, in one place, worded as Redis words it
// where clients parse it.
//
// Fixed texts are constants; texts that carry a name or a number are built by
// the functions at the end. A handler never writes "ERR ..." itself (a test,
// tests/lint/error_texts.sh, fails if a server source outside this header
// holds an error literal), and never shows a Status's code name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/util/status.h"

namespace kvpool::errors {

inline constexpr const char* kSyntax = "ERR syntax error";
inline constexpr const char* kNotInteger = "ERR value is not an integer or out of range";
inline constexpr const char* kSlowlogCount = "ERR count should be greater than or equal to -1";
inline constexpr const char* kMonitorNeedsConnection = "ERR MONITOR needs a client connection";
inline constexpr const char* kNotFloat = "ERR value is not a valid float";
inline constexpr const char* kOverflow = "ERR increment or decrement would overflow";
inline constexpr const char* kIncrFloatNaN = "ERR increment would produce NaN or Infinity";
inline constexpr const char* kNoSuchKey = "ERR no such key";
inline constexpr const char* kDbIndexOutOfRange = "ERR DB index is out of range";
inline constexpr const char* kOom = "OOM command not allowed when used memory > 'maxmemory'.";
inline constexpr const char* kNoAuth = "NOAUTH Authentication required.";
inline constexpr const char* kWrongPass =
    "WRONGPASS invalid username-password pair or user is disabled.";
inline constexpr const char* kAuthNoPassword =
    "ERR AUTH <password> called without any password configured for the default user. Are you "
    "sure your configuration is correct?";
inline constexpr const char* kNoProto = "NOPROTO unsupported protocol version";
inline constexpr const char* kMultiNested = "ERR MULTI calls can not be nested";
inline constexpr const char* kExecWithoutMulti = "ERR EXEC without MULTI";
inline constexpr const char* kDiscardWithoutMulti = "ERR DISCARD without MULTI";
inline constexpr const char* kWatchInMulti = "ERR WATCH inside MULTI is not allowed";
inline constexpr const char* kExecAbort =
    "EXECABORT Transaction discarded because of previous errors.";
inline constexpr const char* kStringTooLong =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
inline constexpr const char* kOffsetOutOfRange = "ERR offset is out of range";
inline constexpr const char* kInvalidCursor = "ERR invalid cursor";
inline constexpr const char* kNoSuchClient = "ERR No such client";
inline constexpr const char* kTimeoutNegative = "ERR timeout is negative";
inline constexpr const char* kNxXxGtLt =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
inline constexpr const char* kGtLtNx = "ERR GT, LT, and/or NX options at the same time are not compatible";

// Appended by the string and keyspace families.
inline constexpr const char* kDecrOverflow = "ERR decrement would overflow";
inline constexpr const char* kGtAndLt = "ERR GT and LT options at the same time are not compatible";
// Followed by the option as given: "ERR Unsupported option foo".
inline constexpr const char* kUnsupportedOptionPrefix = "ERR Unsupported option ";
// Wrapped around the lower-case command name: "ERR invalid expire time in 'set' command".
inline constexpr const char* kInvalidExpireTimePrefix = "ERR invalid expire time in '";
inline constexpr const char* kInvalidExpireTimeSuffix = "' command";
// Redis's getIntFromObjectOrReply for a 64-bit integer outside int's range.
inline constexpr const char* kIntOutOfRange =
    "ERR value is out of range, value must between -2147483648 and 2147483647";
inline constexpr const char* kSameObject = "ERR source and destination objects are the same";

// Appended by the connection, transaction and server families.
inline constexpr const char* kClientNameInvalid =
    "ERR Client names cannot contain spaces, newlines or special characters.";
inline constexpr const char* kInvalidClientId = "ERR Invalid client ID";
inline constexpr const char* kClientIdNotPositive = "ERR client-id should be greater than 0";
// Followed by the type as given and "'": "ERR Unknown client type 'foo'".
inline constexpr const char* kUnknownClientTypePrefix = "ERR Unknown client type '";
// Followed by the user name and "'": "ERR No such user 'bob'".
inline constexpr const char* kNoSuchUserPrefix = "ERR No such user '";
inline constexpr const char* kClientReplyUnsupported =
    "ERR CLIENT REPLY OFF and SKIP are not supported by kvpool";
inline constexpr const char* kHelloNoAuth =
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    "AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
    "protocol version at the same time";
inline constexpr const char* kHelloBadProtover =
    "ERR Protocol version is not an integer or out of range";
// Followed by the option as given and "'": "ERR Syntax error in HELLO option 'FOO'".
inline constexpr const char* kHelloSyntaxPrefix = "ERR Syntax error in HELLO option '";
// Redis's rejection of a no-multi command (SHUTDOWN, SAVE) inside MULTI.
inline constexpr const char* kNotAllowedInMulti = "ERR Command not allowed inside a transaction";
inline constexpr const char* kNoShutdownInProgress = "ERR No shutdown in progress.";
inline constexpr const char* kShutdownFailed = "ERR Errors trying to SHUTDOWN. Check logs.";
inline constexpr const char* kNoConfigFile = "ERR The server is running without a config file";
inline constexpr const char* kConfigRewriteUnsupported =
    "ERR Rewriting config file: kvpool does not rewrite config files; edit the file instead";
inline constexpr const char* kNoPersistence =
    "ERR kvpool is a cache and does not save data to disk";
// Followed by the option as given and "'".
inline constexpr const char* kConfigSetUnknownPrefix =
    "ERR Unknown option or number of arguments for CONFIG SET - '";
// "ERR CONFIG SET failed (possibly related to argument 'x') - <reason>".
inline constexpr const char* kConfigSetFailedPrefix =
    "ERR CONFIG SET failed (possibly related to argument '";
inline constexpr const char* kInvalidCommandSpecified = "ERR Invalid command specified";
inline constexpr const char* kInvalidNumberOfArgs =
    "ERR Invalid number of arguments specified for command";
inline constexpr const char* kNoKeyArguments = "ERR The command has no key arguments";

inline constexpr const char* kMaxClients = "-ERR max number of clients reached\r\n";
// Sent to a refused connection before closing it, as Redis words it.
inline constexpr const char* kProtectedMode =
        "-DENIED Redis is running in protected mode because protected mode is enabled and no "
        "password is set for the default user. In this mode connections are only accepted from "
        "the loopback interface. If you want to connect from external computers to Redis you "
        "may adopt one of the following solutions: 1) Just disable protected mode sending the "
        "command 'CONFIG SET protected-mode no' from the loopback interface by connecting to "
        "Redis from the same host the server is running, however MAKE SURE Redis is not "
        "publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change "
        "permanent. 2) Alternatively you can just disable the protected mode by editing the "
        "Redis configuration file, and setting the protected mode option to 'no', and then "
        "restarting the server. 3) If you started the server manually just for testing, "
        "restart it with the '--protected-mode no' option. 4) Set up an authentication "
        "password for the default user. NOTE: You only need to do one of the above things in "
        "order for the server to start accepting connections from the outside.\r\n";
// A single node answers CLUSTER (but KEYSLOT), READONLY, READWRITE and
// ASKING as Redis does without cluster mode.
inline constexpr const char* kClusterDisabled = "ERR This instance has cluster support disabled";
inline constexpr const char* kInvalidSlot = "ERR Invalid slot";
inline constexpr const char* kInvalidSlotOrCount = "ERR Invalid slot or number of keys";
inline constexpr const char* kClusterPlacesSlotsItself =
    "ERR kvpool places slots itself, from pool-nodes: this CLUSTER subcommand is not supported";
inline constexpr const char* kMSetNxUncheckable =
    "ERR a pool node is unavailable: MSETNX could not check every key";

// ---- texts with arguments ----

// "ERR unknown command 'foo', with args beginning with: 'a' 'b' " as Redis 7
// words it; `preview` is the quoted arguments.
inline std::string UnknownCommand(std::string_view name, std::string_view preview) {
  return "ERR unknown command '" + std::string(name.substr(0, 128)) +
         "', with args beginning with: " + std::string(preview);
}
// "ERR wrong number of arguments for 'get' command" (`name` as the client
// should see it: lower case, "parent|sub" for a subcommand).
inline std::string WrongArity(std::string_view name) {
  return "ERR wrong number of arguments for '" + std::string(name) + "' command";
}
// "ERR unknown subcommand 'x'. Try PARENT HELP."
inline std::string UnknownSubcommand(std::string_view sub, std::string_view parent_upper) {
  return "ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try " +
         std::string(parent_upper) + " HELP.";
}
// "ERR unknown subcommand or wrong number of arguments for 'x'. Try PARENT HELP."
inline std::string UnknownSubcommandOrArity(std::string_view sub, std::string_view parent_upper) {
  return "ERR unknown subcommand or wrong number of arguments for '" +
         std::string(sub.substr(0, 128)) + "'. Try " + std::string(parent_upper) + " HELP.";
}
inline std::string UnrecognizedOption(std::string_view opt) {
  return "ERR Unrecognized option '" + std::string(opt) + "'";
}
inline std::string ClientAttrInvalid(std::string_view attr) {
  return "ERR " + std::string(attr) + " cannot contain spaces, newlines or special characters.";
}

// A failed call's status as a client sees it: the message with Redis's
// prefix, never the code's name ("ERR InvalidArgument: ..."). Out of memory
// is Redis's OOM text.
inline std::string FromStatus(const Status& s) {
  if (s.code() == Code::kOutOfMemory) return kOom;
  if (!s.message().empty()) return "ERR " + s.message();
  switch (s.code()) {
    case Code::kTimeout: return "ERR the request timed out";
    case Code::kUnavailable: return "ERR a pool node is unavailable";
    case Code::kNotFound: return kNoSuchKey;
    default: return "ERR internal error";
  }
}
// The same for EXEC, whose failures Redis prefixes EXECABORT.
inline std::string ExecAbortFromStatus(const Status& s) {
  return "EXECABORT " + (s.message().empty() ? std::string("the transaction did not run")
                                             : s.message());
}

// ---- the pool ----
// A peer's reply to a forwarded command that does not decode as it must.
inline constexpr const char* kPoolBadReply = "ERR a pool node sent a malformed reply";

// A write that could not reach `down_error` (pool::Pool::NodeDownError,
// pool::Pool::NoCopyError).
// A single-key command for a slot another node serves, with
// cluster-redirects yes: "MOVED <slot> <host>:<port>", as Redis Cluster.
inline std::string Moved(int slot, std::string_view addr) {
  return "MOVED " + std::to_string(slot) + " " + std::string(addr);
}
inline std::string PoolNodeDown(std::string_view down_error) {
  return "ERR " + std::string(down_error);
}
inline std::string PoolKeysOnNodes(std::string_view command, std::string_view nodes) {
  return "ERR the keys of '" + std::string(command) + "' live on different pool nodes (" +
         std::string(nodes) + ") and it cannot be split; use keys with a common {hashtag}";
}
inline std::string PoolExecAcrossNodes(std::string_view nodes) {
  return "ERR MULTI/EXEC across pool nodes is not supported: the keys of this transaction "
         "live on " + std::string(nodes) + "; put them on one node with a common {hashtag}";
}
inline std::string PoolExecKeysOn(std::string_view node) {
  return "ERR this transaction's keys live on pool node " + std::string(node);
}
inline std::string PoolExecNoCopy(std::string_view down_error) {
  return "EXECABORT " + std::string(down_error);
}
inline std::string PoolWatchFailed(const Status& s) {
  return "ERR cannot WATCH keys on pool node: " + s.message();
}
// MSET / MSETNX of `total` keys, `failed` of them not stored.
inline std::string PoolNotStored(const Status& s, size_t failed, size_t total) {
  return "ERR " + s.message() + ": " + std::to_string(failed) + " of " + std::to_string(total) +
         " keys were not stored";
}
// `why`: pool::Pool::NodeDownError or NoCopyError.
inline std::string PoolNotDeleted(std::string_view why, size_t failed, size_t total,
                                  int64_t removed) {
  return "ERR " + std::string(why) + ": " + std::to_string(failed) +
         " of " + std::to_string(total) + " keys were not deleted (" + std::to_string(removed) +
         " deleted)";
}
inline std::string PoolNotFlushed(std::string_view nodes) {
  return "ERR pool node(s) " + std::string(nodes) + " unavailable: their keys were not flushed";
}

}  // namespace kvpool::errors
