// How the process runs under a service manager, as redis-server does:
// `daemonize yes` (fork, setsid, the parent waits for the daemon's word),
// `supervised no|upstart|systemd|auto` (readiness and stopping notices), and
// the pidfile.
//
// systemd notices go through libsystemd's sd_notify (the NOTIFY_SOCKET
// datagram protocol: abstract and path sockets, credentials, MAINPID).
//
// Threading: Start runs before any other thread exists (fork); Ready,
// Failed and Stopping on the main thread.
#pragma once

#include <string>

#include "server/config.h"
#include "storage/util/status.h"

namespace kvpool {

class Supervisor {
 public:
  // What `supervised` means here: "no", "upstart" or "systemd"; `auto` is
  // upstart when UPSTART_JOB is set, else systemd when NOTIFY_SOCKET is set,
  // else no.
  static std::string Mode(const Config& config);

  Supervisor() = default;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  // Removes the pidfile this process wrote; a parent still waiting is told
  // the daemon exited before it was ready.
  ~Supervisor();

  // With `daemonize yes`: forks. The parent never returns: it waits until the
  // daemon calls Ready (exit 0) or Failed (prints the message on stderr,
  // exit 1), or exits without either (exit 1). The daemon (the child) runs
  // in a session of its own, standard input, output and error on /dev/null
  // (output and error on the log file when there is one), and returns here.
  // Then writes the pidfile (`pidfile`, or /var/run/kvpool.pid when
  // daemonized without one): kIOError naming the path if it cannot.
  [[nodiscard]] Status Start(const Config& config);
  // The node accepts connections. systemd: READY=1 and STATUS=`status`;
  // upstart: stops itself (SIGSTOP) as upstart's `expect stop` waits for;
  // daemonized: the waiting parent exits 0.
  void Ready(const std::string& status);
  // The node could not start (the caller logged why): the waiting parent
  // prints `message` and exits 1; not daemonized, with the log in a file,
  // `message` is printed on stderr too; systemd is told the status.
  void Failed(const std::string& message);
  // Shutdown began. systemd: STOPPING=1.
  void Stopping();

 private:
  // In the parent: waits on `fd` for the daemon `child`'s word; never returns.
  [[noreturn]] static void WaitForDaemon(int fd, pid_t child);
  [[nodiscard]] Status Daemonize();
  [[nodiscard]] Status WritePidfile(const std::string& path);
  // Sends `state` to systemd (a no-op in other modes); logs a failure.
  void Notify(const std::string& state);
  void TellParent(const std::string& word);

  std::string mode_ = "no";
  bool daemonized_ = false;
  int parent_fd_ = -1;   // the daemon's end of the pipe its parent waits on
  std::string pidfile_;  // written by Start, removed at exit
};

}  // namespace kvpool
