// Every error text the server sends, in one place, worded as Redis words it
// where clients parse it.
#pragma once

namespace kvpool::errors {

inline constexpr const char* kSyntax = "ERR syntax error";
inline constexpr const char* kNotInteger = "ERR value is not an integer or out of range";
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

}  // namespace kvpool::errors
