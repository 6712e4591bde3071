// Supervisor without a fork: `supervised` resolution, the pidfile, the
// sd_notify datagrams a systemd socket receives.
#include "server/supervision.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace kvpool {
namespace {

// Sets an environment variable for one test, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// A config with one option set (Config cannot be copied or moved).
struct ConfigWith : Config {
  ConfigWith(const char* name, const std::string& value) {
    EXPECT_TRUE(Set(name, value, true).ok()) << name;
  }
};

// An empty directory for one test, removed (once emptied) at its end.
class ScopedDir {
 public:
  ScopedDir() : path_(::testing::TempDir() + "kvpool_sup_XXXXXX") {
    EXPECT_NE(mkdtemp(path_.data()), nullptr);
  }
  ~ScopedDir() { rmdir(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(SupervisorTest, AutoFollowsTheEnvironment) {
  ScopedEnv upstart("UPSTART_JOB", nullptr), notify("NOTIFY_SOCKET", nullptr);
  ConfigWith c("supervised", "auto");
  EXPECT_EQ(Supervisor::Mode(c), "no");
  {
    ScopedEnv n("NOTIFY_SOCKET", "/run/systemd/notify");
    EXPECT_EQ(Supervisor::Mode(c), "systemd");
    ScopedEnv u("UPSTART_JOB", "redis");
    EXPECT_EQ(Supervisor::Mode(c), "upstart");  // as Redis: upstart is asked first
  }
  // An explicit mode is taken as it is.
  EXPECT_EQ(Supervisor::Mode(ConfigWith("supervised", "systemd")), "systemd");
  EXPECT_EQ(Supervisor::Mode(Config()), "no");
}

TEST(SupervisorTest, PidfileWrittenAtStartRemovedAtExit) {
  ScopedDir dir;
  std::string path = dir.path() + "/node.pid";
  {
    Supervisor sup;
    ASSERT_TRUE(sup.Start(ConfigWith("pidfile", path)).ok());
    std::ifstream in(path);
    long pid = 0;
    in >> pid;
    EXPECT_EQ(pid, static_cast<long>(getpid()));
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "removed by the destructor";
}

TEST(SupervisorTest, UnwritablePidfileIsAnErrorNamingThePath) {
  ScopedDir dir;
  std::string path = dir.path() + "/no/such/dir/node.pid";
  Supervisor sup;
  Status s = sup.Start(ConfigWith("pidfile", path));
  EXPECT_EQ(s.code(), Code::kIOError);
  EXPECT_EQ(s.message(), "cannot write pidfile '" + path + "': No such file or directory");
}

TEST(SupervisorTest, SystemdGetsReadyAndStopping) {
  ScopedDir dir;
  std::string sock_path = dir.path() + "/notify.sock";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto receive = [fd] {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n < 0 ? std::string("(nothing)") : std::string(buf, static_cast<size_t>(n));
  };

  ScopedEnv notify("NOTIFY_SOCKET", sock_path.c_str());
  Supervisor sup;
  ASSERT_TRUE(sup.Start(ConfigWith("supervised", "systemd")).ok());
  sup.Ready("Ready to accept connections on 127.0.0.1 port 6379");
  EXPECT_EQ(receive(), "READY=1\nSTATUS=Ready to accept connections on 127.0.0.1 port 6379");
  sup.Stopping();
  EXPECT_EQ(receive(), "STOPPING=1\nSTATUS=Shutting down");
  close(fd);
  unlink(sock_path.c_str());
}

TEST(SupervisorTest, NotSupervisedSendsNothing) {
  // NOTIFY_SOCKET alone does not make `supervised no` talk to systemd.
  ScopedEnv notify("NOTIFY_SOCKET", "/nonexistent/notify.sock");
  Supervisor sup;
  ASSERT_TRUE(sup.Start(Config()).ok());
  sup.Ready("ready");  // would log a failed sd_notify if it tried
  sup.Stopping();
}

}  // namespace
}  // namespace kvpool
