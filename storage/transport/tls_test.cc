// TlsContext's refusals and TlsSession's recv/send-like contract, over a
// non-blocking socketpair. Certificates are made with the openssl CLI in a
// temp dir (missing openssl fails the test: install-deps installs it).
#include "storage/transport/tls.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kvpool::transport {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "kvpool_tls_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    Run("openssl req -x509" + ec + " -keyout ca.key -out ca.crt -days 2 -subj /CN=ca");
    Run("openssl req -x509" + ec + " -keyout other.key -out other.crt -days 2 -subj /CN=other");
    // a and b: signed by ca; x: signed by another CA.
    for (const char* n : {"a", "b", "x"}) {
      std::string s(n), ca = s == "x" ? "other" : "ca";
      Run("openssl req" + ec + " -keyout " + s + ".key -out " + s + ".csr -subj /CN=" + s);
      Run("openssl x509 -req -in " + s + ".csr -CA " + ca + ".crt -CAkey " + ca +
          ".key -CAcreateserial -out " + s + ".crt -days 2");
    }
  }
  static void TearDownTestSuite() {
    Run("rm -rf " + *dir_);
    delete dir_;
  }
  static void Run(const std::string& cmd) {
    std::string full = "cd " + *dir_ + " && " + cmd + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(full.c_str()), 0) << "failed (is openssl installed?): " << cmd;
  }
  static std::string F(const std::string& name) { return *dir_ + "/" + name; }
  static TlsOptions Options(const std::string& who) {
    TlsOptions o;
    o.cert_file = F(who + ".crt");
    o.key_file = F(who + ".key");
    o.ca_cert_file = F("ca.crt");
    return o;
  }
  static std::string* dir_;
};
std::string* TlsTest::dir_ = nullptr;

// Non-blocking pair: [0] accepts, [1] connects.
struct Pair {
  int fd[2];
  Pair() {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    for (int f : fd) fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK);
  }
  ~Pair() {
    close(fd[0]);
    close(fd[1]);
  }
};

// Steps both handshakes until both are done or one fails; the failing
// side's errno, or 0.
int Handshake(TlsSession& a, TlsSession& b) {
  for (int i = 0; i < 100; ++i) {
    int ra = a.established() ? 1 : a.Handshake();
    if (ra < 0 && errno != EAGAIN) return errno;
    int rb = b.established() ? 1 : b.Handshake();
    if (rb < 0 && errno != EAGAIN) return errno;
    if (ra == 1 && rb == 1) return 0;
  }
  return ETIMEDOUT;
}

TEST_F(TlsTest, ContextRefusesWhatItCannotUse) {
  TlsOptions o = Options("a");
  o.protocols = "TLSv1.1";
  auto r = TlsContext::Create(o, TlsContext::Role::kServer);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("TLSv1.2 and TLSv1.3"), std::string::npos);

  o = Options("a");
  o.key_file = F("b.key");
  r = TlsContext::Create(o, TlsContext::Role::kServer);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tls-key-file"), std::string::npos);

  o = Options("a");
  o.ca_cert_file.clear();
  EXPECT_FALSE(TlsContext::Create(o, TlsContext::Role::kPeer).ok()) << "a peer must verify";
  o.auth_clients = TlsAuthClients::kNo;
  EXPECT_TRUE(TlsContext::Create(o, TlsContext::Role::kServer).ok());

  o = Options("a");
  o.ciphersuites = "NO_SUCH_SUITE";
  EXPECT_FALSE(TlsContext::Create(o, TlsContext::Role::kServer).ok());
  o = Options("a");
  o.cert_file = F("missing.crt");
  EXPECT_FALSE(TlsContext::Create(o, TlsContext::Role::kServer).ok());
}

TEST_F(TlsTest, PeersVerifyEachOtherAndMoveBytesLikeRecvSend) {
  auto ca = TlsContext::Create(Options("a"), TlsContext::Role::kPeer);
  auto cb = TlsContext::Create(Options("b"), TlsContext::Role::kPeer);
  ASSERT_TRUE(ca.ok() && cb.ok());
  Pair p;
  auto server = TlsSession::Create(*ca.value(), p.fd[0], TlsSession::Side::kAccept);
  auto client = TlsSession::Create(*cb.value(), p.fd[1], TlsSession::Side::kConnect);
  ASSERT_TRUE(server.ok() && client.ok());
  TlsSession& s = *server.value();
  TlsSession& c = *client.value();
  char buf[64];
  EXPECT_EQ(s.Read(buf, sizeof(buf)), -1);  // nothing yet: would block
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(s.wants(), TlsSession::Want::kRead);
  ASSERT_EQ(Handshake(c, s), 0) << s.error() << c.error();

  // 1 MiB through a socket buffer far smaller: partial writes, EAGAIN,
  // retried with the same bytes from where the writer got to.
  std::string out(1 << 20, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i * 131 + 7);
  std::string in;
  size_t sent = 0;
  std::vector<char> rb(70000);
  while (in.size() < out.size()) {
    if (sent < out.size()) {
      ssize_t n = c.Write(out.data() + sent, out.size() - sent);
      if (n > 0) sent += static_cast<size_t>(n);
      else ASSERT_EQ(errno, EAGAIN);
    }
    ssize_t n;
    while ((n = s.Read(rb.data(), rb.size())) > 0) in.append(rb.data(), static_cast<size_t>(n));
    ASSERT_EQ(errno, EAGAIN);
  }
  EXPECT_EQ(in, out);
  EXPECT_FALSE(s.pending());

  // The peer goes away: Read says 0 or fails, never blocks.
  client.value().reset();
  shutdown(p.fd[1], SHUT_RDWR);
  ssize_t n = s.Read(buf, sizeof(buf));
  EXPECT_TRUE(n == 0 || (n < 0 && errno != EAGAIN)) << n;
}

TEST_F(TlsTest, AStrangerOrAClientNotSpeakingTlsIsRefused) {
  TlsOptions so = Options("a");
  so.auth_clients = TlsAuthClients::kYes;
  auto sctx = TlsContext::Create(so, TlsContext::Role::kServer);
  ASSERT_TRUE(sctx.ok());
  {
    // A certificate the CA signed: in. One another CA signed: EPROTO.
    auto good = TlsContext::Create(Options("b"), TlsContext::Role::kPeer);
    auto stranger = TlsContext::Create(Options("x"), TlsContext::Role::kPeer);
    ASSERT_TRUE(good.ok() && stranger.ok());
    Pair p1, p2;
    auto s1 = TlsSession::Create(*sctx.value(), p1.fd[0], TlsSession::Side::kAccept);
    auto c1 = TlsSession::Create(*good.value(), p1.fd[1], TlsSession::Side::kConnect);
    auto s2 = TlsSession::Create(*sctx.value(), p2.fd[0], TlsSession::Side::kAccept);
    auto c2 = TlsSession::Create(*stranger.value(), p2.fd[1], TlsSession::Side::kConnect);
    ASSERT_TRUE(s1.ok() && c1.ok() && s2.ok() && c2.ok());
    EXPECT_EQ(Handshake(*c1.value(), *s1.value()), 0) << s1.value()->error();
    EXPECT_EQ(Handshake(*c2.value(), *s2.value()), EPROTO);
    EXPECT_FALSE(s2.value()->established());
  }
  {
    // Plain RESP on the TLS socket: EPROTO, not a hang.
    Pair p;
    auto s = TlsSession::Create(*sctx.value(), p.fd[0], TlsSession::Side::kAccept);
    ASSERT_TRUE(s.ok());
    const char ping[] = "*1\r\n$4\r\nPING\r\n";
    ASSERT_EQ(write(p.fd[1], ping, sizeof(ping) - 1), static_cast<ssize_t>(sizeof(ping) - 1));
    char buf[16];
    EXPECT_EQ(s.value()->Read(buf, sizeof(buf)), -1);
    EXPECT_EQ(errno, EPROTO);
    EXPECT_FALSE(s.value()->error().empty());
    EXPECT_FALSE(s.value()->established());
  }
}

}  // namespace
}  // namespace kvpool::transport
