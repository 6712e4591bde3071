#include "server/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

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

}  // namespace

Status InitLogging(const std::string& logfile, const std::string& level) {
  spdlog::level::level_enum lvl;
  if (!ToSpdLevel(level, &lvl)) return Status::InvalidArgument("unknown loglevel '" + level + "'");
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (logfile.empty()) {
      logger = spdlog::stdout_logger_mt("kvpool");
    } else {
      logger = spdlog::basic_logger_mt("kvpool", logfile);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError(std::string("cannot open log: ") + e.what());
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

}  // namespace kvpool
