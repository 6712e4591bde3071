// Connection family: PING ECHO QUIT RESET HELLO AUTH CLIENT, with the exact
// RESP bytes redis-server 7.0 sends.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/dispatcher.h"
#include "server/testing/command_harness.h"

namespace kvpool {
namespace {

using kvpool::testing::CommandHarness;

constexpr int64_t kNow = 1'700'000'000'000;

const std::string kOk = "+OK\r\n";
const std::string kNil = "$-1\r\n";
const std::string kSyntaxErr = "-ERR syntax error\r\n";
const std::string kNoAuth = "-NOAUTH Authentication required.\r\n";
const std::string kWrongPass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const std::string kBadName =
    "-ERR Client names cannot contain spaces, newlines or special characters.\r\n";

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
std::string Err(const std::string& msg) { return "-" + msg + "\r\n"; }
std::string WrongArgs(const std::string& cmd) {
  return Err("ERR wrong number of arguments for '" + cmd + "' command");
}

// HELLO's reply as redis-server 7.0 writes it (version 7.0.15).
std::string HelloReply(int proto, int64_t id) {
  std::string body = "$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n" +
                     Int(proto) + "$2\r\nid\r\n" + Int(id) +
                     "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                     "$7\r\nmodules\r\n*0\r\n";
  return (proto == 3 ? "%7\r\n" : "*14\r\n") + body;
}

// The payload of a RESP2 bulk reply.
std::string BulkPayload(const std::string& reply) {
  size_t crlf = reply.find("\r\n");
  EXPECT_EQ(reply[0], '$') << reply;
  return reply.substr(crlf + 2, reply.size() - crlf - 4);
}

class ConnectionFamilyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.SetNow(kNow);
    ClientInfo& me = *h.client().info;
    me.id = 5;
    me.addr = "127.0.0.1:5000";
    me.laddr = "127.0.0.1:6379";
    me.fd = 8;
    me.created_ms = kNow - 2000;
  }
  CommandHarness h;
};

// ---------------- PING ECHO QUIT ----------------

TEST_F(ConnectionFamilyTest, Ping) {
  EXPECT_EQ(h.Run({"PING"}), "+PONG\r\n");
  EXPECT_EQ(h.Run({"ping", "hello world"}), Bulk("hello world"));
  EXPECT_EQ(h.Run({"PING", ""}), Bulk(""));
  EXPECT_EQ(h.Run({"PING", "a", "b"}), WrongArgs("ping"));
}

TEST_F(ConnectionFamilyTest, PingResp3IsTheSame) {
  h.client().resp = 3;
  EXPECT_EQ(h.Run({"PING"}), "+PONG\r\n");
  EXPECT_EQ(h.Run({"PING", "x"}), Bulk("x"));
}

TEST_F(ConnectionFamilyTest, Echo) {
  EXPECT_EQ(h.Run({"ECHO", "hello"}), Bulk("hello"));
  EXPECT_EQ(h.Run({"ECHO", std::string("\0\r\n", 3)}), Bulk(std::string("\0\r\n", 3)));
  EXPECT_EQ(h.Run({"ECHO"}), WrongArgs("echo"));
  EXPECT_EQ(h.Run({"ECHO", "a", "b"}), WrongArgs("echo"));
}

TEST_F(ConnectionFamilyTest, QuitRepliesOkThenCloses) {
  EXPECT_FALSE(h.client().close_after_reply);
  EXPECT_EQ(h.Run({"QUIT"}), kOk);
  EXPECT_TRUE(h.client().close_after_reply);
}

TEST_F(ConnectionFamilyTest, QuitInsideMultiActsAtOnce) {
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"QUIT"}), kOk);
  EXPECT_TRUE(h.client().close_after_reply);
}

// ---------------- HELLO ----------------

TEST_F(ConnectionFamilyTest, Hello2) {
  EXPECT_EQ(h.Run({"HELLO", "2"}), HelloReply(2, 5));
  EXPECT_EQ(h.Run({"HELLO"}), HelloReply(2, 5));
}

TEST_F(ConnectionFamilyTest, Hello3SwitchesProtocolAndRepliesInIt) {
  EXPECT_EQ(h.Run({"HELLO", "3"}), HelloReply(3, 5));
  EXPECT_EQ(h.client().resp, 3);
  EXPECT_EQ(h.client().info->resp.load(), 3);
  EXPECT_EQ(h.Run({"HELLO"}), HelloReply(3, 5));
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), "_\r\n");
  EXPECT_EQ(h.Run({"HELLO", "2"}), HelloReply(2, 5));
  EXPECT_EQ(h.client().resp, 2);
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), kNil);
}

TEST_F(ConnectionFamilyTest, HelloSetName) {
  EXPECT_EQ(h.Run({"HELLO", "3", "SETNAME", "myname"}), HelloReply(3, 5));
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), Bulk("myname"));
  EXPECT_EQ(h.Run({"HELLO", "2", "SETNAME", "bad name"}), kBadName);
  EXPECT_EQ(h.client().resp, 3) << "a refused HELLO changes nothing";
}

TEST_F(ConnectionFamilyTest, HelloErrors) {
  for (const char* v : {"4", "1", "0", "-1"})
    EXPECT_EQ(h.Run({"HELLO", v}), "-NOPROTO unsupported protocol version\r\n") << v;
  EXPECT_EQ(h.Run({"HELLO", "abc"}),
            Err("ERR Protocol version is not an integer or out of range"));
  EXPECT_EQ(h.Run({"HELLO", "03"}),
            Err("ERR Protocol version is not an integer or out of range"));
  EXPECT_EQ(h.Run({"HELLO", "3", "FOO"}), Err("ERR Syntax error in HELLO option 'FOO'"));
  EXPECT_EQ(h.Run({"HELLO", "3", "AUTH", "default"}),
            Err("ERR Syntax error in HELLO option 'AUTH'"));
  EXPECT_EQ(h.Run({"HELLO", "3", "SETNAME"}), Err("ERR Syntax error in HELLO option 'SETNAME'"));
  EXPECT_EQ(h.client().resp, 2);
}

TEST_F(ConnectionFamilyTest, HelloAuthWithoutRequirepass) {
  // The default user has no password: any password is accepted for it.
  EXPECT_EQ(h.Run({"HELLO", "3", "AUTH", "default", "whatever"}), HelloReply(3, 5));
  EXPECT_EQ(h.Run({"HELLO", "2", "AUTH", "bob", "pw"}), kWrongPass);
}

// ---------------- AUTH ----------------

TEST_F(ConnectionFamilyTest, AuthWithoutRequirepass) {
  EXPECT_EQ(h.Run({"AUTH", "x"}),
            Err("ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"));
  EXPECT_EQ(h.Run({"AUTH", "default", "anything"}), kOk);
  EXPECT_EQ(h.Run({"AUTH", "nosuchuser", "pw"}), kWrongPass);
  EXPECT_EQ(h.Run({"AUTH", "a", "b", "c"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"AUTH"}), WrongArgs("auth"));
}

class RequirepassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.SetNow(kNow);
    h.client().info->id = 9;
  }
  CommandHarness h{{"--requirepass", "s3cret pw"}};
};

TEST_F(RequirepassTest, NoAuthBeforeAuth) {
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{
           {"PING"}, {"ECHO", "x"}, {"CLIENT", "ID"}, {"MULTI"}, {"INFO"}, {"CONFIG", "GET", "*"},
           {"COMMAND"}, {"WATCH", "k"}, {"SHUTDOWN"}})
    EXPECT_EQ(h.Run(cmd), kNoAuth) << cmd[0];
}

TEST_F(RequirepassTest, AuthWrongThenRight) {
  EXPECT_EQ(h.Run({"AUTH", "wrong"}), kWrongPass);
  EXPECT_EQ(h.Run({"AUTH", "default", "wrong"}), kWrongPass);
  EXPECT_EQ(h.Run({"AUTH", "someone", "s3cret pw"}), kWrongPass);
  EXPECT_EQ(h.Run({"AUTH", "s3cret p"}), kWrongPass);
  EXPECT_EQ(h.Run({"AUTH", "s3cret pww"}), kWrongPass);
  EXPECT_EQ(h.Run({"PING"}), kNoAuth);
  EXPECT_EQ(h.Run({"AUTH", "a", "b", "c"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"AUTH", "s3cret pw"}), kOk);
  EXPECT_EQ(h.Run({"PING"}), "+PONG\r\n");
  EXPECT_EQ(h.Run({"AUTH", "default", "s3cret pw"}), kOk);
  EXPECT_EQ(h.Run({"AUTH", "wrong"}), kWrongPass);
  EXPECT_EQ(h.Run({"PING"}), "+PONG\r\n") << "a failed re-AUTH keeps the connection authenticated";
}

TEST_F(RequirepassTest, QuitAllowedBeforeAuth) {
  EXPECT_EQ(h.Run({"QUIT"}), kOk);
  EXPECT_TRUE(h.client().close_after_reply);
}

TEST_F(RequirepassTest, HelloNeedsAuth) {
  EXPECT_EQ(h.Run({"HELLO", "3"}),
            Err("NOAUTH HELLO must be called with the client already authenticated, otherwise "
                "the HELLO AUTH <user> <pass> option can be used to authenticate the client and "
                "select the RESP protocol version at the same time"));
  EXPECT_EQ(h.client().resp, 2);
  EXPECT_EQ(h.Run({"HELLO", "3", "AUTH", "default", "bad"}), kWrongPass);
  EXPECT_EQ(h.Run({"PING"}), kNoAuth);
  EXPECT_EQ(h.Run({"HELLO", "3", "AUTH", "default", "s3cret pw", "SETNAME", "h"}),
            HelloReply(3, 9));
  EXPECT_TRUE(h.client().authenticated);
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), Bulk("h"));
}

TEST_F(RequirepassTest, ResetDeauthenticates) {
  EXPECT_EQ(h.Run({"AUTH", "s3cret pw"}), kOk);
  EXPECT_EQ(h.Run({"RESET"}), "+RESET\r\n");
  EXPECT_EQ(h.Run({"PING"}), kNoAuth);
}

TEST_F(RequirepassTest, AuthDoesNotLeakToAnotherClient) {
  EXPECT_EQ(h.Run({"AUTH", "s3cret pw"}), kOk);
  ClientState other;
  protocol::StringSink sink;
  protocol::ReplyBuilder rb(&sink);
  std::vector<std::string_view> ping = {"PING"};
  Dispatch(h.server(), other, rb, ping, kNow);
  EXPECT_EQ(sink.out, kNoAuth);
}

// ---------------- RESET ----------------

TEST_F(ConnectionFamilyTest, ResetRestoresConnectionState) {
  EXPECT_EQ(h.Run({"HELLO", "3", "SETNAME", "before-reset"}), HelloReply(3, 5));
  h.client().db = 4;
  h.client().info->db = 4;
  EXPECT_EQ(h.Run({"WATCH", "w"}), kOk);
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"PING"}), "+QUEUED\r\n");
  EXPECT_EQ(h.Run({"RESET"}), "+RESET\r\n");
  const ClientState& c = h.client();
  EXPECT_FALSE(c.in_multi);
  EXPECT_TRUE(c.queued.empty());
  EXPECT_EQ(c.info->multi_queued.load(), -1);
  EXPECT_EQ(c.watch, nullptr);
  EXPECT_EQ(c.db, 0);
  EXPECT_EQ(c.info->db.load(), 0);
  EXPECT_EQ(c.resp, 2);
  EXPECT_EQ(c.info->resp.load(), 2);
  EXPECT_TRUE(c.authenticated) << "no requirepass: the default user is authenticated";
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), kNil);
  EXPECT_EQ(h.Run({"EXEC"}), Err("ERR EXEC without MULTI"));
}

// ---------------- CLIENT ----------------

TEST_F(ConnectionFamilyTest, ClientId) {
  EXPECT_EQ(h.Run({"CLIENT", "ID"}), Int(5));
  EXPECT_EQ(h.Run({"client", "id"}), Int(5));
  EXPECT_EQ(h.Run({"CLIENT", "ID", "x"}), WrongArgs("client|id"));
}

TEST_F(ConnectionFamilyTest, ClientSetNameGetName) {
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), kNil);
  EXPECT_EQ(h.Run({"CLIENT", "SETNAME", "worker-1"}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), Bulk("worker-1"));
  {
    std::lock_guard<std::mutex> l(h.client().info->mu);
    EXPECT_EQ(h.client().info->name, "worker-1");
  }
  EXPECT_EQ(h.Run({"CLIENT", "SETNAME", ""}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), kNil) << "an empty name clears it";
  for (const char* bad : {"a b", "a\nb", "tab\there", "\x01", "\x7f", "caf\xc3\xa9"})
    EXPECT_EQ(h.Run({"CLIENT", "SETNAME", bad}), kBadName) << bad;
  EXPECT_EQ(h.Run({"CLIENT", "SETNAME"}), WrongArgs("client|setname"));
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME", "x"}), WrongArgs("client|getname"));
}

TEST_F(ConnectionFamilyTest, ClientSetInfo) {
  EXPECT_EQ(h.Run({"CLIENT", "SETINFO", "lib-name", "redis-py"}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "SETINFO", "LIB-VER", "4.3.4"}), kOk);
  std::string info = BulkPayload(h.Run({"CLIENT", "INFO"}));
  EXPECT_NE(info.find(" lib-name=redis-py lib-ver=4.3.4\n"), std::string::npos) << info;
  EXPECT_EQ(h.Run({"CLIENT", "SETINFO", "lib-name", "a b"}),
            Err("ERR lib-name cannot contain spaces, newlines or special characters."));
  EXPECT_EQ(h.Run({"CLIENT", "SETINFO", "foo", "bar"}), Err("ERR Unrecognized option 'foo'"));
  EXPECT_EQ(h.Run({"CLIENT", "SETINFO", "lib-name"}), WrongArgs("client|setinfo"));
}

TEST_F(ConnectionFamilyTest, ClientErrors) {
  EXPECT_EQ(h.Run({"CLIENT"}), WrongArgs("client"));
  EXPECT_EQ(h.Run({"CLIENT", "FOO"}), Err("ERR unknown subcommand 'FOO'. Try CLIENT HELP."));
  EXPECT_EQ(h.Run({"client", "foo", "x"}), Err("ERR unknown subcommand 'foo'. Try CLIENT HELP."));
  EXPECT_EQ(h.Run({"CLIENT", "NO-TOUCH", "on"}),
            Err("ERR unknown subcommand 'NO-TOUCH'. Try CLIENT HELP."));
}

TEST_F(ConnectionFamilyTest, ClientNoEvictAndReply) {
  EXPECT_EQ(h.Run({"CLIENT", "NO-EVICT", "on"}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "NO-EVICT", "OFF"}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "NO-EVICT", "x"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "NO-EVICT"}), WrongArgs("client|no-evict"));
  EXPECT_EQ(h.Run({"CLIENT", "REPLY", "ON"}), kOk);
  EXPECT_EQ(h.Run({"CLIENT", "REPLY", "x"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "REPLY", "OFF"}),
            Err("ERR CLIENT REPLY OFF and SKIP are not supported by kvpool"));
  EXPECT_EQ(h.Run({"CLIENT", "REPLY"}), WrongArgs("client|reply"));
}

TEST_F(ConnectionFamilyTest, ClientHelp) {
  std::string help = h.Run({"CLIENT", "HELP"});
  EXPECT_EQ(help.rfind("*37\r\n+CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n",
                       0),
            0u)
      << help;
  EXPECT_NE(help.find("+    Prints this help.\r\n"), std::string::npos);
}

// Two registered clients: this one (id 5) and another (id 6) whose kills are
// counted.
class ClientListTest : public ConnectionFamilyTest {
 protected:
  void SetUp() override {
    ConnectionFamilyTest::SetUp();
    h.server().clients().Add(h.client().info, [this] { ++self_kills; });
    other = std::make_shared<ClientInfo>();
    other->id = 6;
    other->addr = "127.0.0.1:6000";
    other->laddr = "127.0.0.1:6379";
    other->fd = 9;
    other->created_ms = kNow - 3500;
    other->last_interaction_ms = kNow - 1200;
    other->db = 2;
    other->last_command = "get";
    other->name = "other";
    h.server().clients().Add(other, [this] { ++other_kills; });
  }
  std::shared_ptr<ClientInfo> other;
  int other_kills = 0, self_kills = 0;
};

const char kOtherLine[] =
    "id=6 addr=127.0.0.1:6000 laddr=127.0.0.1:6379 fd=9 name=other age=3 idle=1 flags=N db=2 "
    "sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 "
    "oll=0 omem=0 tot-mem=0 events=r cmd=get user=default redir=-1 resp=2 lib-name= lib-ver=\n";

std::string SelfLine(const char* cmd, int resp = 2) {
  return std::string(
             "id=5 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=8 name= age=2 idle=0 flags=N "
             "db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 "
             "rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=") +
         cmd + " user=default redir=-1 resp=" + std::to_string(resp) + " lib-name= lib-ver=\n";
}

TEST_F(ClientListTest, ListFormat) {
  EXPECT_EQ(h.Run({"CLIENT", "LIST"}), Bulk(SelfLine("client|list") + kOtherLine));
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "TYPE", "normal"}),
            Bulk(SelfLine("client|list") + kOtherLine));
}

TEST_F(ClientListTest, InfoFormatAndResp3Verbatim) {
  EXPECT_EQ(h.Run({"CLIENT", "INFO"}), Bulk(SelfLine("client|info")));
  h.client().resp = 3;
  h.client().info->resp = 3;
  std::string line = SelfLine("client|info", 3);
  EXPECT_EQ(h.Run({"CLIENT", "INFO"}),
            "=" + std::to_string(line.size() + 4) + "\r\ntxt:" + line + "\r\n");
}

TEST_F(ClientListTest, ListShowsNameMultiAndDb) {
  EXPECT_EQ(h.Run({"CLIENT", "SETNAME", "lister"}), kOk);
  h.client().db = 3;
  h.client().info->db = 3;
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"PING"}), "+QUEUED\r\n");
  EXPECT_EQ(h.client().info->multi_queued.load(), 1);
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+PONG\r\n");
  std::string list = BulkPayload(h.Run({"CLIENT", "LIST", "ID", "5"}));
  EXPECT_NE(list.find(" name=lister "), std::string::npos) << list;
  EXPECT_NE(list.find(" db=3 "), std::string::npos) << list;
  h.client().info->multi_queued = 2;
  list = BulkPayload(h.Run({"CLIENT", "LIST", "ID", "5"}));
  EXPECT_NE(list.find(" flags=x "), std::string::npos) << list;
  EXPECT_NE(list.find(" multi=2 "), std::string::npos) << list;
}

TEST_F(ClientListTest, ListFilters) {
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID", "6"}), Bulk(kOtherLine));
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID", "6", "5"}), Bulk(kOtherLine + SelfLine("client|list")))
      << "in the order asked for";
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID", "99"}), Bulk(""));
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID", "0"}), Bulk(""));
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID", "6", "abc"}), Err("ERR Invalid client ID"));
  for (const char* type : {"master", "replica", "slave", "PUBSUB"})
    EXPECT_EQ(h.Run({"CLIENT", "LIST", "TYPE", type}), Bulk("")) << type;
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "TYPE", "foo"}), Err("ERR Unknown client type 'foo'"));
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "TYPE"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "ID"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "LIST", "FOO"}), kSyntaxErr);
}

TEST_F(ClientListTest, KillById) {
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "6"}), Int(1));
  EXPECT_EQ(other_kills, 1);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "999"}), Int(0));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "abc"}),
            Err("ERR client-id should be greater than 0"));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "0"}), Err("ERR client-id should be greater than 0"));
  EXPECT_FALSE(h.client().close_after_reply);
  EXPECT_EQ(self_kills, 0);
}

TEST_F(ClientListTest, KillSelf) {
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "5"}), Int(0)) << "SKIPME defaults to yes";
  EXPECT_FALSE(h.client().close_after_reply);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "5", "SKIPME", "no"}), Int(1));
  EXPECT_TRUE(h.client().close_after_reply) << "closed after this reply";
  EXPECT_EQ(self_kills, 0) << "not through the registry, which could close before replying";
}

TEST_F(ClientListTest, KillByFilters) {
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ADDR", "127.0.0.1:6000"}), Int(1));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ADDR", "127.0.0.1:1"}), Int(0));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "LADDR", "127.0.0.1:6379"}), Int(1)) << "all but me";
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "TYPE", "normal"}), Int(1));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "TYPE", "master"}), Int(0));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "USER", "default", "ID", "6"}), Int(1));
  EXPECT_EQ(other_kills, 4);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"}), Int(2));
  EXPECT_EQ(other_kills, 5);
  EXPECT_TRUE(h.client().close_after_reply);
}

TEST_F(ClientListTest, KillErrors) {
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "FOO", "bar"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "6", "SKIPME"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID", "6", "SKIPME", "maybe"}), kSyntaxErr);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "TYPE", "bogus"}), Err("ERR Unknown client type 'bogus'"));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "USER", "bob"}), Err("ERR No such user 'bob'"));
  EXPECT_EQ(h.Run({"CLIENT", "KILL"}), WrongArgs("client|kill"));
  EXPECT_EQ(other_kills, 0);
}

TEST_F(ClientListTest, KillOldForm) {
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "127.0.0.1:6000"}), kOk);
  EXPECT_EQ(other_kills, 1);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "127.0.0.1:1"}), Err("ERR No such client"));
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "ID"}), Err("ERR No such client"))
      << "three arguments are the old form, as in Redis";
  EXPECT_FALSE(h.client().close_after_reply);
  EXPECT_EQ(h.Run({"CLIENT", "KILL", "127.0.0.1:5000"}), kOk) << "the old form may kill oneself";
  EXPECT_TRUE(h.client().close_after_reply);
}

}  // namespace
}  // namespace kvpool
