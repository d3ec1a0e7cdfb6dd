// Log outputs (docs/PROTOCOLS.md "observability: logging"): stderr/stdout, an appended file, and a
// size-rotated file with lumberjack's semantics (backup names, maxBackups, maxAge, gzip
// compression).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace gost::log {

// Where formatted lines go. write() takes one complete line (with its '\n'); lines written from
// different threads never interleave.
class Writer {
 public:
  virtual ~Writer() = default;
  virtual void write(std::string_view line) = 0;
  // A terminal gets the colored text layout (logrus checks the output once, at first use).
  virtual bool is_terminal() const { return false; }
};

// Process-wide writers for fd 2 / fd 1 (shared, so every logger writing there takes the same lock).
std::shared_ptr<Writer> stderr_writer();
std::shared_ptr<Writer> stdout_writer();

// GOST's plain file output: `mkdir -p` the parent (0755), open O_CREAT|O_WRONLY|O_APPEND 0666.
// nullptr on failure, with `error` set to Go's error text ("open /x/y: permission denied").
std::shared_ptr<Writer> open_file_writer(const std::string& path, std::string& error);

struct RotationOptions {
  std::string filename;
  std::uint64_t max_bytes = std::uint64_t{100} << 20;
  int max_age_days = 0;  // 0: no age limit
  int max_backups = 0;   // 0: keep all
  bool local_time = false;
  bool compress = false;
};

// lumberjack.Logger: opened lazily at the first line (appending to an existing file that still has
// room); a line that would overflow max_bytes first renames the file to backup_name() and starts a
// new one. Removing old backups and compressing them runs on a background thread (as lumberjack's
// mill goroutine), never on the logging thread.
class RotatingFile final : public Writer {
 public:
  explicit RotatingFile(RotationOptions o);
  ~RotatingFile() override;
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  void write(std::string_view line) override;
  const RotationOptions& options() const { return opts_; }

  struct MillJob;

 private:
  bool open_existing_or_new(std::size_t write_len, std::string& err);
  bool open_new(std::string& err);
  bool rotate(std::string& err);
  void close_file();

  const RotationOptions opts_;
  std::shared_ptr<MillJob> mill_;  // null when there is nothing to clean up
  std::mutex mu_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::chrono::system_clock::time_point last_backup_{};  // backup names only ever increase
};

// "<dir>/<name>-2006-01-02T15-04-05.000<ext>" (ext = from the last '.' of the base name), in UTC
// unless local_time.
std::string backup_name(const std::string& filename, std::chrono::system_clock::time_point t,
                        bool local_time);

// Blocks until the background cleanup/compression queued so far has finished (tests).
void wait_rotation_idle();

}  // namespace gost::log
