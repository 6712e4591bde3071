#include "server/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

namespace kvpool {

namespace {

bool ToSpdLevel(const std::string& level, spdlog::level::level_enum* out) {
  if (level == "debug") *out = spdlog::level::debug;
  else if (level == "verbose") *out = spdlog::level::debug;
  else if (level == "notice") *out = spdlog::level::info;
  else if (level == "warning") *out = spdlog::level::warn;
  else return false;
  return true;
}

// A file sink that can be reopened at its path. The new file is opened
// before the old one is closed, under the sink's own lock, so no line is
// written while the file changes and a failed reopen keeps the old file.
class ReopenableFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~ReopenableFileSink() override {
    if (file_ != nullptr) fclose(file_);
  }

  // Opens `path` for appending; errno-style message on failure.
  [[nodiscard]] Status Open(const std::string& path) {
    std::lock_guard<std::mutex> l(mutex_);
    path_ = path;
    return OpenLocked();
  }
  [[nodiscard]] Status Reopen() {
    std::lock_guard<std::mutex> l(mutex_);
    return OpenLocked();
  }
  // Standard output and error follow the file from now on (and after reopens).
  [[nodiscard]] Status CaptureStdio() {
    std::lock_guard<std::mutex> l(mutex_);
    capture_stdio_ = true;
    return PointStdio();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    fwrite(formatted.data(), 1, formatted.size(), file_);
  }
  void flush_() override { fflush(file_); }

 private:
  Status OpenLocked() {
    std::FILE* f = fopen(path_.c_str(), "ae");
    if (f == nullptr)
      return Status::IOError("cannot open log file '" + path_ + "': " + strerror(errno));
    if (file_ != nullptr) fclose(file_);
    file_ = f;
    return capture_stdio_ ? PointStdio() : Status::OK();
  }
  Status PointStdio() {
    fflush(stdout);
    fflush(stderr);
    if (dup2(fileno(file_), STDOUT_FILENO) < 0 || dup2(fileno(file_), STDERR_FILENO) < 0)
      return Status::IOError("cannot send standard output to '" + path_ + "': " + strerror(errno));
    return Status::OK();
  }

  std::string path_;             // guarded by mutex_
  std::FILE* file_ = nullptr;    // guarded by mutex_
  bool capture_stdio_ = false;   // guarded by mutex_
};

std::string g_logfile;
std::shared_ptr<ReopenableFileSink> g_file_sink;

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status InitLogging(const std::string& logfile, const std::string& level) {
  spdlog::level::level_enum lvl;
  if (!ToSpdLevel(level, &lvl)) return Status::InvalidArgument("unknown loglevel '" + level + "'");
  std::shared_ptr<spdlog::logger> logger;
  if (logfile.empty()) {
    logger = spdlog::stdout_logger_mt("kvpool");
  } else {
    // spdlog would create a missing directory (and its parents): a typo in
    // the path would then log somewhere no one looks.
    std::string dir = DirName(logfile);
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Status::IOError("cannot open log file '" + logfile + "': directory '" + dir +
                             "' does not exist");
    auto sink = std::make_shared<ReopenableFileSink>();
    if (Status s = sink->Open(logfile); !s.ok()) return s;
    g_file_sink = std::move(sink);
    g_logfile = logfile;
    logger = std::make_shared<spdlog::logger>("kvpool", g_file_sink);
  }
  logger->set_pattern("%P:%t %d %b %Y %H:%M:%S.%e %^%L%$ %v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::OK();
}

bool SetLogLevel(const std::string& level) {
  spdlog::level::level_enum lvl;
  if (!ToSpdLevel(level, &lvl)) return false;
  spdlog::set_level(lvl);
  return true;
}

const std::string& LogFilePath() { return g_logfile; }

Status ReopenLog() { return g_file_sink ? g_file_sink->Reopen() : Status::OK(); }

Status CaptureStdio() { return g_file_sink ? g_file_sink->CaptureStdio() : Status::OK(); }

}  // namespace kvpool
