// kvpool-server [conf-file] [--option value ...]
#include <event2/thread.h>
#include <malloc.h>
#include <limits.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/config.h"
#include "server/config_file.h"
#include "server/info.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/supervision.h"

namespace {

void Usage() {
  fprintf(stderr,
          "Usage: kvpool-server [/path/to/kvpool.conf] [--option value ...]\n"
          "       kvpool-server --version\n"
          "       kvpool-server --dump-config   (prints a kvpool.conf with every default)\n"
          "       kvpool-server --check-config /path/to/redis.conf [--option value ...]\n"
          "                     (lists each directive: used, ignored or invalid)\n"
          "Examples:\n"
          "       kvpool-server                 (a node on 127.0.0.1:6379)\n"
          "       kvpool-server --port 7777 --maxmemory 1gb\n"
          "       kvpool-server conf/kvpool.conf --loglevel verbose\n");
}

}  // namespace

int main(int argc, char** argv) {
  // glibc would hand every large freed buffer (replies, transport frames)
  // back to the kernel at once and fault it in again on the next request;
  // keep them for reuse instead: up to 16 MiB free at the top of each
  // arena. Past that a free gives the top back; the server's cron trims
  // free memory inside the heaps (Server::OnCron). The cron alone is not
  // enough: malloc_trim never shrinks the top of an I/O thread's arena, so
  // a larger threshold kept a burst's buffers resident for good (44 MiB per
  // I/O thread after a client that never read its replies).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  // SIGHUP reopens the log file once the node runs (Server::Run); until then
  // (reserving the segment may take a while) it must not kill the process.
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    Usage();
    return 0;
  }
  if (!args.empty() && (args[0] == "--version" || args[0] == "-v")) {
    printf("kvpool-server v=%s (redis protocol 7.0 compatible)\n",
           std::string(kvpool::kKvpoolVersion).c_str());
    return 0;
  }
  if (!args.empty() && args[0] == "--dump-config") {
    fputs(kvpool::Config::DefaultConfFile().c_str(), stdout);
    return 0;
  }
  if (!args.empty() && args[0] == "--check-config")
    return kvpool::CheckConfig({args.begin() + 1, args.end()}, stdout);

  // Redis directives kvpool does not implement are ignored (logged below,
  // once logging is set up); an error names the file and line.
  kvpool::Config config;
  kvpool::ConfigLoader loader(&config);
  std::string config_file;
  if (!args.empty() && args[0].rfind("--", 0) != 0) {
    config_file = args[0];
    args.erase(args.begin());
    kvpool::Status s = loader.LoadFile(config_file);
    if (!s.ok()) {
      fprintf(stderr, "kvpool-server: %s\n", s.message().c_str());
      return 1;
    }
    char real[PATH_MAX];  // INFO shows where it is, as Redis (and `dir` moves us)
    if (realpath(config_file.c_str(), real) != nullptr) config_file = real;
  }
  kvpool::Status s = loader.LoadArgs(args);
  if (!s.ok()) {
    fprintf(stderr, "kvpool-server: %s\n", s.message().c_str());
    Usage();
    return 1;
  }
  s = kvpool::EnterConfiguredDir(config);  // before the log file: relative paths lead there
  if (!s.ok()) {
    fprintf(stderr, "kvpool-server: %s\n", s.message().c_str());
    return 1;
  }
  s = kvpool::InitLogging(config.String("logfile"), config.String("loglevel"));
  if (!s.ok()) {
    fprintf(stderr, "kvpool-server: %s\n", s.message().c_str());
    return 1;
  }
  loader.LogNotes();

  // Daemonizes (daemonize yes) and writes the pidfile: before any thread.
  // Past this point, a daemon's waiting parent is told of every failure.
  kvpool::Supervisor supervisor;
  s = supervisor.Start(config);
  if (!s.ok()) {
    spdlog::critical("cannot start: {}", s.message());
    supervisor.Failed(s.message());
    return 1;
  }

  evthread_use_pthreads();  // Post() activates events across threads

  auto server = kvpool::Server::Create(&config, config_file, argv[0]);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    supervisor.Failed(server.status().ToString());
    return 1;
  }
  kvpool::Server::RunHooks hooks;
  hooks.ready = [&supervisor](const std::string& status) { supervisor.Ready(status); };
  hooks.stopping = [&supervisor] { supervisor.Stopping(); };
  s = server.value()->Run(hooks);
  if (!s.ok()) {
    spdlog::critical("{}", s.ToString());
    supervisor.Failed(s.ToString());
    return 1;
  }
  return 0;
}
