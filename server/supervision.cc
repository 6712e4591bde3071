#include "server/supervision.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "server/logging.h"

namespace kvpool {

namespace {

constexpr char kDefaultDaemonPidfile[] = "/var/run/kvpool.pid";
// The daemon's word to its parent: kReady, or kFailed then the message.
constexpr char kReady = 'R';
constexpr char kFailed = 'E';

bool EnvSet(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0';
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent is gone: nobody left to tell
    off += static_cast<size_t>(n);
  }
}

}  // namespace

std::string Supervisor::Mode(const Config& config) {
  std::string mode = config.String("supervised");
  if (mode != "auto") return mode;
  if (EnvSet("UPSTART_JOB")) return "upstart";
  if (EnvSet("NOTIFY_SOCKET")) return "systemd";
  return "no";
}

Supervisor::~Supervisor() {
  if (parent_fd_ >= 0) TellParent(std::string(1, kFailed) + "the daemon exited before it was ready");
  if (!pidfile_.empty()) unlink(pidfile_.c_str());
}

Status Supervisor::Start(const Config& config) {
  mode_ = Mode(config);
  if (config.Int("daemonize") != 0) {
    if (Status s = Daemonize(); !s.ok()) return s;
  }
  if (mode_ == "systemd" && !EnvSet("NOTIFY_SOCKET"))
    spdlog::warn("supervised systemd, but NOTIFY_SOCKET is not set: no readiness notice will be sent");
  if (mode_ == "upstart" && !EnvSet("UPSTART_JOB"))
    spdlog::warn("supervised upstart, but UPSTART_JOB is not set: the node will not stop itself "
                 "when ready");
  if (mode_ != "no") spdlog::info("supervised by {}", mode_);
  std::string pidfile = config.String("pidfile");
  if (pidfile.empty() && daemonized_) pidfile = kDefaultDaemonPidfile;
  if (!pidfile.empty()) return WritePidfile(pidfile);
  return Status::OK();
}

Status Supervisor::Daemonize() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return Status::IOError(std::string("daemonize: pipe: ") + strerror(errno));
  // Lines still buffered would be written twice, once by each process.
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Status::IOError(std::string("daemonize: fork: ") + strerror(errno));
  }
  if (pid > 0) {
    close(fds[1]);
    WaitForDaemon(fds[0], pid);
  }
  close(fds[0]);
  parent_fd_ = fds[1];
  daemonized_ = true;
  if (setsid() < 0) return Status::IOError(std::string("daemonize: setsid: ") + strerror(errno));
  int null = open("/dev/null", O_RDWR);
  if (null < 0) return Status::IOError(std::string("daemonize: /dev/null: ") + strerror(errno));
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) dup2(null, fd);
  if (null > STDERR_FILENO) close(null);
  // Output and error on the log file, so that what the process itself
  // writes there (a crash report) is kept; no log file: /dev/null, as Redis.
  return CaptureStdio();
}

void Supervisor::WaitForDaemon(int fd, pid_t child) {
  std::string word;
  char buf[512];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    word.append(buf, static_cast<size_t>(n));
  }
  if (!word.empty() && word[0] == kReady) _exit(0);
  if (!word.empty() && word[0] == kFailed) {
    fprintf(stderr, "kvpool-server: %s\n", word.c_str() + 1);
    _exit(1);
  }
  // Neither: the daemon died (a crash, a signal) before saying anything.
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    fprintf(stderr, "kvpool-server: the daemon (pid %d) was killed by signal %d before it was ready\n",
            static_cast<int>(child), WTERMSIG(status));
  else
    fprintf(stderr, "kvpool-server: the daemon (pid %d) exited with status %d before it was ready\n",
            static_cast<int>(child), WEXITSTATUS(status));
  _exit(1);
}

Status Supervisor::WritePidfile(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot write pidfile '" + path + "': " + strerror(errno));
  std::string text = std::to_string(getpid()) + "\n";
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  if (close(fd) != 0 && n >= 0) {
    n = -1;
    err = errno;
  }
  if (n != static_cast<ssize_t>(text.size())) {
    unlink(path.c_str());
    return Status::IOError("cannot write pidfile '" + path + "': " +
                           (n < 0 ? strerror(err) : "short write"));
  }
  pidfile_ = path;
  return Status::OK();
}

void Supervisor::Ready(const std::string& status) {
  std::string state = "READY=1\nSTATUS=" + status;
  if (daemonized_) state += "\nMAINPID=" + std::to_string(getpid());
  Notify(state);
  if (mode_ == "upstart" && EnvSet("UPSTART_JOB")) raise(SIGSTOP);
  TellParent(std::string(1, kReady));
}

void Supervisor::Failed(const std::string& message) {
  Notify("STATUS=Failed to start: " + message);
  if (daemonized_) {
    TellParent(std::string(1, kFailed) + message);
  } else if (!LogFilePath().empty()) {
    // The log went to a file: whoever started the process sees why too.
    fprintf(stderr, "kvpool-server: %s\n", message.c_str());
  }
}

void Supervisor::Stopping() { Notify("STOPPING=1\nSTATUS=Shutting down"); }

void Supervisor::Notify(const std::string& state) {
  if (mode_ != "systemd" || !EnvSet("NOTIFY_SOCKET")) return;
  int r = sd_notify(0, state.c_str());
  if (r < 0) spdlog::warn("sd_notify to {} failed: {}", getenv("NOTIFY_SOCKET"), strerror(-r));
}

void Supervisor::TellParent(const std::string& word) {
  if (parent_fd_ < 0) return;
  WriteAll(parent_fd_, word);
  close(parent_fd_);
  parent_fd_ = -1;
}

}  // namespace kvpool
