#include "core/log_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace gost::log {

// Removal / compression of old backups for one rotating file (lumberjack's millRunOnce).
struct RotatingFile::MillJob {
  std::string dir, prefix, ext;  // backups are <dir>/<prefix><timestamp><ext>[.gz]
  int max_backups = 0, max_age_days = 0;
  bool compress = false;
  std::atomic<bool> queued{false};
};

namespace {

// Go's error text: syscall messages are lower-case ("permission denied").
std::string errno_text(int e) {
  std::string s = std::strerror(e);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

std::string op_error(const char* op, const std::string& path, int e) {
  return std::string(op) + " " + path + ": " + errno_text(e);
}

// Writes all of `data`; bounded when the descriptor is non-blocking and stays full.
bool write_all(int fd, std::string_view data, int& err) {
  int stalls = 0;
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && stalls++ < 10) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    err = n < 0 ? errno : EIO;
    return false;
  }
  return true;
}

// logrus prints this on stderr when its output fails.
void report_write_error(const std::string& what) {
  std::string line = "Failed to write to log, " + what + "\n";
  int ignored = 0;
  write_all(2, line, ignored);
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// os.MkdirAll(dir, 0755).
bool mkdir_all(const std::string& dir, std::string& err) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return true;
    err = op_error("mkdir", dir, ENOTDIR);
    return false;
  }
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (part.empty() || part.back() == '/') continue;
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      err = op_error("mkdir", part, errno);
      return false;
    }
  }
  return true;
}

class FdWriter final : public Writer {
 public:
  FdWriter(int fd, bool owned, std::string path) : fd_(fd), owned_(owned), path_(std::move(path)) {}
  ~FdWriter() override {
    if (owned_) ::close(fd_);
  }
  void write(std::string_view line) override {
    int err = 0;
    bool ok;
    {
      std::lock_guard lk(mu_);
      ok = write_all(fd_, line, err);
    }
    if (!ok && owned_) report_write_error(op_error("write", path_, err));
  }
  bool is_terminal() const override { return ::isatty(fd_) == 1; }

 private:
  const int fd_;
  const bool owned_;
  const std::string path_;
  std::mutex mu_;
};

// ---- the background "mill" -------------------------------------------------------------------

constexpr std::string_view kGz = ".gz";

struct Backup {
  std::string name;  // file name in the directory
  std::int64_t ms;   // its timestamp (parsed as UTC, as lumberjack does)
};

int digits(std::string_view s, std::size_t pos, std::size_t n) {
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// time.Parse("2006-01-02T15-04-05.000", ts) as UTC; false if it does not parse.
bool parse_backup_time(std::string_view ts, std::int64_t& ms) {
  if (ts.size() != 23 || ts[4] != '-' || ts[7] != '-' || ts[10] != 'T' || ts[13] != '-' ||
      ts[16] != '-' || ts[19] != '.')
    return false;
  int y = digits(ts, 0, 4), mo = digits(ts, 5, 2), d = digits(ts, 8, 2), h = digits(ts, 11, 2),
      mi = digits(ts, 14, 2), s = digits(ts, 17, 2), f = digits(ts, 20, 3);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      s < 0 || s > 59 || f < 0)
    return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  ms = static_cast<std::int64_t>(::timegm(&tm)) * 1000 + f;
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The backups of one file, newest first (lumberjack's oldLogFiles).
std::vector<Backup> list_backups(const RotatingFile::MillJob& job) {
  std::vector<Backup> out;
  DIR* d = ::opendir(job.dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.size() > 4096) continue;
    if (e->d_type == DT_DIR) continue;
    if (name.size() < job.prefix.size() || name.substr(0, job.prefix.size()) != job.prefix)
      continue;
    std::int64_t ms = 0;
    for (std::string ext : {job.ext, job.ext + std::string(kGz)}) {
      if (!ends_with(name, ext) || name.size() < job.prefix.size() + ext.size()) continue;
      auto ts = name.substr(job.prefix.size(), name.size() - job.prefix.size() - ext.size());
      if (parse_backup_time(ts, ms)) {
        out.push_back({std::string(name), ms});
        break;
      }
    }
  }
  ::closedir(d);
  std::stable_sort(out.begin(), out.end(),
                   [](const Backup& a, const Backup& b) { return a.ms > b.ms; });
  return out;
}

// lumberjack's compressLogFile: src → dst (gzip, src's mode), then src removed; dst removed on
// error.
void compress_file(const std::string& src, const std::string& dst) {
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return;
  struct stat st {};
  if (::fstat(in, &st) != 0) {
    ::close(in);
    return;
  }
  int out = ::open(dst.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    ::close(in);
    return;
  }
  gzFile gz = ::gzdopen(out, "wb");
  if (!gz) {
    ::close(out);
    ::close(in);
    ::unlink(dst.c_str());
    return;
  }
  bool ok = true;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0) break;
    if (::gzwrite(gz, buf.data(), static_cast<unsigned>(n)) != static_cast<int>(n)) {
      ok = false;
      break;
    }
  }
  if (::gzclose(gz) != Z_OK) ok = false;  // also closes `out`
  ::close(in);
  if (!ok) {
    ::unlink(dst.c_str());
    return;
  }
  if (::geteuid() == 0) (void)!::chown(dst.c_str(), st.st_uid, st.st_gid);
  ::unlink(src.c_str());
}

void mill_run_once(const RotatingFile::MillJob& job) {
  auto files = list_backups(job);
  std::vector<Backup> remove;
  if (job.max_backups > 0 && static_cast<std::size_t>(job.max_backups) < files.size()) {
    // A backup and its compressed copy count once.
    std::set<std::string> preserved;
    std::vector<Backup> remaining;
    for (auto& f : files) {
      std::string n = f.name;
      if (ends_with(n, kGz)) n.resize(n.size() - kGz.size());
      preserved.insert(n);
      if (preserved.size() > static_cast<std::size_t>(job.max_backups))
        remove.push_back(std::move(f));
      else
        remaining.push_back(std::move(f));
    }
    files = std::move(remaining);
  }
  if (job.max_age_days > 0) {
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    std::int64_t cutoff = now_ms - std::int64_t{job.max_age_days} * 24 * 3600 * 1000;
    std::vector<Backup> remaining;
    for (auto& f : files) {
      if (f.ms < cutoff)
        remove.push_back(std::move(f));
      else
        remaining.push_back(std::move(f));
    }
    files = std::move(remaining);
  }
  for (auto& f : remove) ::unlink((job.dir + "/" + f.name).c_str());
  if (job.compress)
    for (auto& f : files)
      if (!ends_with(f.name, kGz)) {
        std::string path = job.dir + "/" + f.name;
        compress_file(path, path + std::string(kGz));
      }
}

// One thread for all rotating files; started at the first job. Never destroyed: a log line written
// during static destruction must still find it.
class Mill {
 public:
  void enqueue(std::shared_ptr<RotatingFile::MillJob> job) {
    if (job->queued.exchange(true)) return;  // already waiting: that run covers this rotation too
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(job));
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
    cv_.notify_one();
  }

  void wait_idle() {
    std::unique_lock lk(mu_);
    idle_cv_.wait(lk, [this] { return queue_.empty() && !busy_; });
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return !queue_.empty(); });
      auto job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lk.unlock();
      job->queued = false;  // a rotation from now on queues another run
      mill_run_once(*job);
      job.reset();
      lk.lock();
      busy_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::shared_ptr<RotatingFile::MillJob>> queue_;
  bool busy_ = false;
  bool started_ = false;
};

Mill& mill() {
  static Mill* m = new Mill;
  return *m;
}

}  // namespace

std::shared_ptr<Writer> stderr_writer() {
  static const std::shared_ptr<Writer> w = std::make_shared<FdWriter>(2, false, "/dev/stderr");
  return w;
}

std::shared_ptr<Writer> stdout_writer() {
  static const std::shared_ptr<Writer> w = std::make_shared<FdWriter>(1, false, "/dev/stdout");
  return w;
}

std::shared_ptr<Writer> open_file_writer(const std::string& path, std::string& error) {
  std::string ignored;
  mkdir_all(dir_of(path), ignored);  // GOST ignores MkdirAll's error; the open reports it
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) {
    error = op_error("open", path, errno);
    return nullptr;
  }
  return std::make_shared<FdWriter>(fd, true, path);
}

std::string backup_name(const std::string& filename, std::chrono::system_clock::time_point t,
                        bool local_time) {
  std::string dir = dir_of(filename), base = base_of(filename);
  auto dot = base.rfind('.');
  std::string ext = dot == std::string::npos ? std::string() : base.substr(dot);
  std::string prefix = base.substr(0, base.size() - ext.size());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int frac = static_cast<int>(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  if (local_time)
    ::localtime_r(&secs, &tm);
  else
    ::gmtime_r(&secs, &tm);
  char ts[96];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d-%02d-%02d.%03d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  std::string file = prefix + "-" + ts + ext;
  // filepath.Join(dir, file): no "./" for a bare name, no "//" under the root.
  if (filename.find('/') == std::string::npos) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

void wait_rotation_idle() { mill().wait_idle(); }

RotatingFile::RotatingFile(RotationOptions o) : opts_(std::move(o)) {
  if (opts_.max_backups > 0 || opts_.max_age_days > 0 || opts_.compress) {
    mill_ = std::make_shared<MillJob>();
    std::string base = base_of(opts_.filename);
    auto dot = base.rfind('.');
    mill_->ext = dot == std::string::npos ? std::string() : base.substr(dot);
    mill_->prefix = base.substr(0, base.size() - mill_->ext.size()) + "-";
    mill_->dir = dir_of(opts_.filename);
    mill_->max_backups = opts_.max_backups;
    mill_->max_age_days = opts_.max_age_days;
    mill_->compress = opts_.compress;
  }
}

RotatingFile::~RotatingFile() { close_file(); }

void RotatingFile::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RotatingFile::open_new(std::string& err) {
  if (!mkdir_all(dir_of(opts_.filename), err)) {
    err = "can't make directories for new logfile: " + err;
    return false;
  }
  mode_t mode = 0600;
  struct stat st {};
  bool existed = ::stat(opts_.filename.c_str(), &st) == 0;
  if (existed) {
    mode = st.st_mode & 07777;
    // Backups are named by the millisecond. Unlike lumberjack, two rotations within one do not
    // overwrite the first: the later gets the next free millisecond (and names keep increasing, so
    // maxBackups still removes the oldest content).
    auto t =
        std::max(std::chrono::system_clock::now(), last_backup_ + std::chrono::milliseconds(1));
    std::string name = backup_name(opts_.filename, t, opts_.local_time);
    struct stat bst {};
    for (int i = 0; i < 1000 && ::lstat(name.c_str(), &bst) == 0; ++i) {
      t += std::chrono::milliseconds(1);
      name = backup_name(opts_.filename, t, opts_.local_time);
    }
    last_backup_ = t;
    if (::rename(opts_.filename.c_str(), name.c_str()) != 0) {
      err = "can't rename log file: " + op_error("rename", opts_.filename, errno);
      return false;
    }
  }
  int fd =
      ::open(opts_.filename.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_APPEND | O_CLOEXEC, mode);
  if (fd < 0) {
    err = "can't open new logfile: " + op_error("open", opts_.filename, errno);
    return false;
  }
  if (existed && ::geteuid() == 0) (void)!::fchown(fd, st.st_uid, st.st_gid);
  fd_ = fd;
  size_ = 0;
  return true;
}

bool RotatingFile::open_existing_or_new(std::size_t write_len, std::string& err) {
  if (mill_) mill().enqueue(mill_);
  struct stat st {};
  if (::stat(opts_.filename.c_str(), &st) != 0) {
    if (errno == ENOENT) return open_new(err);
    err = "error getting log file info: " + op_error("stat", opts_.filename, errno);
    return false;
  }
  if (static_cast<std::uint64_t>(st.st_size) + write_len >= opts_.max_bytes) return rotate(err);
  int fd = ::open(opts_.filename.c_str(), O_APPEND | O_WRONLY | O_CLOEXEC);
  if (fd < 0) return open_new(err);
  fd_ = fd;
  size_ = static_cast<std::uint64_t>(st.st_size);
  return true;
}

bool RotatingFile::rotate(std::string& err) {
  close_file();
  if (!open_new(err)) return false;
  if (mill_) mill().enqueue(mill_);
  return true;
}

void RotatingFile::write(std::string_view line) {
  std::string err;
  {
    std::lock_guard lk(mu_);
    if (line.size() > opts_.max_bytes) {
      err = "write length " + std::to_string(line.size()) + " exceeds maximum file size " +
            std::to_string(opts_.max_bytes);
    } else if (fd_ < 0 && !open_existing_or_new(line.size(), err)) {
      // err set
    } else if (size_ + line.size() > opts_.max_bytes && !rotate(err)) {
      // err set
    } else {
      int e = 0;
      std::string_view rest = line;
      bool ok = write_all(fd_, rest, e);
      size_ += line.size();  // lumberjack counts what it tried (a short write is an error anyway)
      if (!ok) err = op_error("write", opts_.filename, e);
    }
  }
  if (!err.empty()) report_write_error(err);
}

}  // namespace gost::log
