// Logging (docs/PROTOCOLS.md "observability: logging"): the JSON and text layouts byte for byte,
// the colored layout on a terminal, %q quoting, per-logger levels and fan-out, file output,
// lumberjack rotation, and reconfiguration while other threads log.
#include "core/log.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/model.hpp"
#include "core/log_file.hpp"

namespace gost::log {
namespace {

using namespace std::chrono_literals;

// 2026-12-01T11:11:52.261Z
std::chrono::system_clock::time_point fixed_now() {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(1796123512261));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    if (nl == std::string::npos) {
      out.push_back(s.substr(start));  // an unterminated line: reported as such by the caller
      break;
    }
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

std::string fmt_int(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%03d", i % 1000);
  return buf;
}

std::size_t count(const std::string& s, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

// The colored layout's message column: %-44s, then one space.
std::string col(const std::string& msg) {
  return msg + std::string(msg.size() < 44 ? 44 - msg.size() : 0, ' ') + " ";
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

config::Log make_log(std::string output, std::string format = "json", std::string level = "info") {
  config::Log l;
  l.output = std::move(output);
  l.format = std::move(format);
  l.level = std::move(level);
  return l;
}

config::NamedLogger named(std::string name, config::Log l) {
  config::NamedLogger n;
  n.name = std::move(name);
  n.log = std::move(l);
  return n;
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
    char tmpl[] = "/tmp/gost-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    testing::set_clock(&fixed_now);
  }
  void TearDown() override {
    configure(std::nullopt, {});
    testing::set_clock(nullptr);
    wait_rotation_idle();
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// ---- JSON ------------------------------------------------------------------------------------

TEST_F(LogTest, JsonGoldenLines) {
  configure(make_log(path("a.log")), {});
  Logger svc = root().with(
      {{"kind", "service"}, {"service", "service-0"}, {"listener", "tcp"}, {"handler", "http"}});
  svc.info("listening on 127.0.0.1:18181/tcp");
  root()
      .with({{"kind", "auther"}, {"auther", "a1"}})
      .warn("file loader: open /nonexistent/x: no such file or directory");
  svc.with("sid", "dc7amu9ksduebk0240m0")
      .info("127.0.0.1:56980 >< 127.0.0.1:18181", {{"duration", std::int64_t{5047587}},
                                                   {"inputBytes", std::int64_t{131}},
                                                   {"outputBytes", std::int64_t{398}},
                                                   {"network", ""}});
  root().write(Level::fatal, "Config File \"gost\" Not Found in \"[/etc/gost]\"");
  root().debug("not at info");
  EXPECT_EQ(
      read_file(path("a.log")),
      R"({"handler":"http","kind":"service","level":"info","listener":"tcp","msg":"listening on 127.0.0.1:18181/tcp","service":"service-0","time":"2026-12-01T11:11:52.261Z"}
{"auther":"a1","kind":"auther","level":"warning","msg":"file loader: open /nonexistent/x: no such file or directory","time":"2026-12-01T11:11:52.261Z"}
{"duration":5047587,"handler":"http","inputBytes":131,"kind":"service","level":"info","listener":"tcp","msg":"127.0.0.1:56980 >< 127.0.0.1:18181","network":"","outputBytes":398,"service":"service-0","sid":"dc7amu9ksduebk0240m0","time":"2026-12-01T11:11:52.261Z"}
{"level":"fatal","msg":"Config File \"gost\" Not Found in \"[/etc/gost]\"","time":"2026-12-01T11:11:52.261Z"}
)");
}

TEST_F(LogTest, JsonEscapingAndClashes) {
  configure(make_log(path("a.log"), "json", "trace"), {});
  // HTML characters raw; control characters escaped; U+2028 escaped; invalid UTF-8 → U+FFFD.
  root().trace("<a href=\"x\">&</a>\n\t\x01\b\f\\ \xE2\x80\xA8 \xff caf\xC3\xA9");
  // Fixed keys are not overwritten: the field is renamed fields.<key> (logrus).
  root().with({{"time", "t"}, {"msg", "m"}, {"level", "l"}, {"zz", "z"}}).error("x");
  // A later field replaces an earlier one with the same key.
  root().with("k", "base").info("dup", {{"k", "extra"}});
  EXPECT_EQ(
      read_file(path("a.log")),
      "{\"level\":\"trace\",\"msg\":\"<a href=\\\"x\\\">&</a>\\n\\t\\u0001\\b\\f\\\\ "
      "\\u2028 \\ufffd caf\xC3\xA9\",\"time\":\"2026-12-01T11:11:52.261Z\"}\n"
      "{\"fields.level\":\"l\",\"fields.msg\":\"m\",\"fields.time\":\"t\",\"level\":\"error\","
      "\"msg\":\"x\",\"time\":\"2026-12-01T11:11:52.261Z\",\"zz\":\"z\"}\n"
      "{\"k\":\"extra\",\"level\":\"info\",\"msg\":\"dup\",\"time\":\"2026-12-01T11:11:52."
      "261Z\"}\n");
}

// field() finds a field by name (its own, then the shared ones); with() replaces a field of the
// same name, also when the name is another copy of the same text.
TEST_F(LogTest, FieldsByName) {
  configure(make_log(path("a.log")), {});
  Logger svc = root().with({{"kind", "service"}, {"service", "s0"}}).shared();
  Logger conn = svc.with({{"remote", "127.0.0.1:1"}, {"sid", "abc"}});
  EXPECT_EQ(conn.field("sid"), "abc");
  EXPECT_EQ(conn.field("service"), "s0");  // shared
  EXPECT_EQ(conn.field("dst"), "");
  const std::string key = "sid";  // same text, another pointer
  Logger changed = conn.with(key.c_str(), "def");
  EXPECT_EQ(changed.field("sid"), "def");
  EXPECT_EQ(conn.field("sid"), "abc");  // the original is unchanged
  changed.info("x");
  EXPECT_EQ(
      read_file(path("a.log")),
      R"({"kind":"service","level":"info","msg":"x","remote":"127.0.0.1:1","service":"s0","sid":"def","time":"2026-12-01T11:11:52.261Z"})"
      "\n");
}

TEST_F(LogTest, TimeUsesLocalZone) {
  setenv("TZ", "Asia/Kolkata", 1);  // +05:30, no DST
  tzset();
  // Another second than the other tests use: the formatted second is cached per thread.
  testing::set_clock([] { return fixed_now() + 3s; });
  configure(make_log(path("a.log")), {});
  root().info("x");
  configure(make_log(path("b.log"), "text"), {});
  root().info("x");
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(read_file(path("a.log")),
            "{\"level\":\"info\",\"msg\":\"x\",\"time\":\"2026-12-01T16:41:55.261+05:30\"}\n");
  EXPECT_EQ(read_file(path("b.log")), "time=\"2026-12-01T16:41:55+05:30\" level=info msg=x\n");
}

TEST_F(LogTest, RealClockTimeFormat) {
  testing::set_clock(nullptr);
  configure(make_log(path("a.log")), {});
  root().info("x");
  std::regex re(
      R"re(\{"level":"info","msg":"x","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)"\}
)re");
  EXPECT_TRUE(std::regex_match(read_file(path("a.log")), re)) << read_file(path("a.log"));
}

// ---- text ------------------------------------------------------------------------------------

TEST_F(LogTest, TextGoldenLines) {
  configure(make_log(path("a.log"), "text"), {});
  root()
      .with({{"kind", "auther"}, {"auther", "a1"}})
      .warn("file loader: open /nonexistent/x: no such file or directory");
  root()
      .with({{"kind", "handler"},
             {"service", "svc-chain"},
             {"handler", "http"},
             {"listener", "tcp"},
             {"remote", "127.0.0.1:42766"},
             {"local", "127.0.0.1:18183"},
             {"client", "127.0.0.1:42766"},
             {"network", ""},
             {"sid", "dc7amvhksdue98pig7jg"}})
      .info("127.0.0.1:42766 <> 127.0.0.1:18183");
  root().with("kind", "service").info("plain", {{"n", std::int64_t{-42}}});
  EXPECT_EQ(
      read_file(path("a.log")),
      R"(time="2026-12-01T11:11:52Z" level=warning msg="file loader: open /nonexistent/x: no such file or directory" auther=a1 kind=auther
time="2026-12-01T11:11:52Z" level=info msg="127.0.0.1:42766 <> 127.0.0.1:18183" client="127.0.0.1:42766" handler=http kind=handler listener=tcp local="127.0.0.1:18183" network= remote="127.0.0.1:42766" service=svc-chain sid=dc7amvhksdue98pig7jg
time="2026-12-01T11:11:52Z" level=info msg=plain kind=service n=-42
)");
}

TEST_F(LogTest, TextQuoting) {
  configure(make_log(path("a.log"), "text", "debug"), {});
  root().debug("m", {{"bare", "AZaz09-._/@^+"},
                     {"colon", "a:b"},
                     {"empty", ""},
                     {"eq", "a=b"},
                     {"nbsp", "a\xC2\xA0z"},
                     {"nl", "a\nb\tc\x01\x7f"},
                     {"quote", "say \"hi\" \\o/"},
                     {"raw", "\xff"},
                     {"space", "a b"},
                     {"uni", "caf\xC3\xA9"},
                     {"uni4", "\xF0\x9F\x98\x80"}});
  EXPECT_EQ(read_file(path("a.log")),
            "time=\"2026-12-01T11:11:52Z\" level=debug msg=m bare=AZaz09-._/@^+ colon=\"a:b\" "
            "empty= eq=\"a=b\" nbsp=\"a\\u00a0z\" nl=\"a\\nb\\tc\\x01\\x7f\" "
            "quote=\"say \\\"hi\\\" \\\\o/\" raw=\"\\xff\" space=\"a b\" uni=\"caf\xC3\xA9\" "
            "uni4=\"\xF0\x9F\x98\x80\"\n");
}

TEST_F(LogTest, TextDurationsAndClashes) {
  configure(make_log(path("a.log"), "text"), {});
  root().info("d", {{"duration", std::int64_t{1500000}}});
  root().info("d", {{"duration", std::int64_t{1500}}});
  root().info("d", {{"duration", std::int64_t{0}}});
  root().info("d", {{"duration", std::int64_t{3723000000000}}});
  root().with("msg", "x").info("");  // an empty message is left out, as logrus does
  EXPECT_EQ(read_file(path("a.log")),
            "time=\"2026-12-01T11:11:52Z\" level=info msg=d duration=1.5ms\n"
            "time=\"2026-12-01T11:11:52Z\" level=info msg=d duration=\"1.5\xC2\xB5s\"\n"
            "time=\"2026-12-01T11:11:52Z\" level=info msg=d duration=0s\n"
            "time=\"2026-12-01T11:11:52Z\" level=info msg=d duration=1h2m3s\n"
            "time=\"2026-12-01T11:11:52Z\" level=info fields.msg=x\n");
}

// The colored layout when the output is a terminal (a pseudo-terminal as stdout here).
TEST_F(LogTest, TerminalColoredLayout) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  termios tio{};
  tcgetattr(slave, &tio);
  cfmakeraw(&tio);
  tcsetattr(slave, TCSANOW, &tio);
  std::fflush(stdout);
  int saved = dup(1);
  ASSERT_GE(saved, 0);
  dup2(slave, 1);
  configure(make_log("stdout", "text", "debug"), {});
  root()
      .with({{"kind", "service"}, {"service", "s"}, {"listener", "tcp"}, {"handler", "http"}})
      .info("listening on 127.0.0.1:18197/tcp");
  root().warn("w", {{"a", "x y"}});
  root().debug("d\n");
  root().error("e");
  configure(std::nullopt, {});
  dup2(saved, 1);
  close(saved);
  close(slave);
  std::string got;
  char buf[4096];
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) break;
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  close(master);
  const std::string t = "[2026-12-01T11:11:52Z] ";
  EXPECT_EQ(got, "\x1b[36mINFO\x1b[0m" + t + col("listening on 127.0.0.1:18197/tcp") +
                     " \x1b[36mhandler\x1b[0m=http \x1b[36mkind\x1b[0m=service "
                     "\x1b[36mlistener\x1b[0m=tcp \x1b[36mservice\x1b[0m=s\n"
                     "\x1b[33mWARN\x1b[0m" +
                     t + col("w") + " \x1b[33ma\x1b[0m=\"x y\"\n" + "\x1b[37mDEBU\x1b[0m" + t +
                     col("d") + "\n" +  //
                     "\x1b[31mERRO\x1b[0m" + t + col("e") + "\n");
}

// ---- levels, named loggers -------------------------------------------------------------------

TEST_F(LogTest, LevelNamesAndParsing) {
  EXPECT_EQ(parse_level("trace"), Level::trace);
  EXPECT_EQ(parse_level("warn"), Level::warn);
  EXPECT_EQ(parse_level("warning"), Level::info);  // GOST: anything else → info
  EXPECT_EQ(parse_level("none"), Level::info);
  EXPECT_EQ(parse_level(""), Level::info);
  EXPECT_STREQ(level_name(Level::warn), "warning");
  EXPECT_STREQ(level_name(Level::fatal), "fatal");
}

TEST_F(LogTest, EnabledIsTheLowestConfiguredLevel) {
  configure(make_log(path("a.log"), "json", "error"), {});
  EXPECT_FALSE(enabled(Level::info));
  EXPECT_TRUE(enabled(Level::error));
  configure(make_log(path("a.log"), "json", "error"),
            {named("n", make_log(path("n.log"), "json", "trace"))});
  EXPECT_TRUE(enabled(Level::trace));
  EXPECT_EQ(level(), Level::trace);
  // Discarded outputs do not count: nothing would be written.
  configure(make_log("none"), {named("n", make_log("null", "json", "trace"))});
  EXPECT_FALSE(enabled(Level::fatal));
  configure(std::nullopt, {});
  EXPECT_TRUE(enabled(Level::info));
  EXPECT_FALSE(enabled(Level::debug));
  set_level("debug");
  EXPECT_TRUE(enabled(Level::debug));
  set_level("bogus");
  EXPECT_FALSE(enabled(Level::debug));
}

TEST_F(LogTest, NamedLoggersFanOutWithTheirOwnLevelAndFormat) {
  configure(make_log(path("default.log")), {named("a", make_log(path("a.log"), "json", "debug")),
                                            named("b", make_log(path("b.log"), "text", "error"))});
  Logger both = service_logger("a", {"b", "unknown"}).with("service", "s1");
  both.debug("only a");
  both.error("both");
  service_logger("", {"nope"}).info("unknown names: default");
  service_logger("", {}).info("no names: default");
  service_logger("b", {}).warn("below b's level");
  root().debug("below the default level");
  EXPECT_EQ(read_file(path("a.log")),
            "{\"level\":\"debug\",\"logger\":\"a\",\"msg\":\"only a\",\"service\":\"s1\",\"time\":"
            "\"2026-12-01T11:11:52.261Z\"}\n"
            "{\"level\":\"error\",\"logger\":\"a\",\"msg\":\"both\",\"service\":\"s1\",\"time\":"
            "\"2026-12-01T11:11:52.261Z\"}\n");
  EXPECT_EQ(read_file(path("b.log")),
            "time=\"2026-12-01T11:11:52Z\" level=error msg=both logger=b service=s1\n");
  EXPECT_EQ(read_file(path("default.log")),
            "{\"level\":\"info\",\"msg\":\"unknown names: default\",\"time\":\"2026-12-01T11:11:52."
            "261Z\"}\n"
            "{\"level\":\"info\",\"msg\":\"no names: default\",\"time\":\"2026-12-01T11:11:52."
            "261Z\"}\n");
}

TEST_F(LogTest, LoggersResolvedAgainstTheCurrentConfiguration) {
  Logger svc = service_logger("a", {});
  configure(make_log(path("default.log")), {});
  svc.info("1");  // "a" not configured yet: default
  configure(make_log(path("default.log")), {named("a", make_log(path("a.log")))});
  svc.info("2");
  EXPECT_EQ(split_lines(read_file(path("default.log"))).size(), 1u);
  EXPECT_EQ(split_lines(read_file(path("a.log"))).size(), 1u);
}

TEST_F(LogTest, LegacyConfigureKeepsLevel) {
  set_level("debug");
  configure("text", path("a.log"));
  root().debug("x");
  EXPECT_EQ(read_file(path("a.log")), "time=\"2026-12-01T11:11:52Z\" level=debug msg=x\n");
}

// ---- outputs ---------------------------------------------------------------------------------

TEST_F(LogTest, FileOutputCreatesParentsAndAppends) {
  std::string p = path("x/y/z.log");
  configure(make_log(p), {});
  root().info("1");
  configure(make_log(p), {});  // reopened: appended, not truncated
  root().info("2");
  EXPECT_EQ(split_lines(read_file(p)).size(), 2u);
  struct stat st {};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  mode_t um = umask(0);
  umask(um);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~um);
}

TEST_F(LogTest, UnopenableFileWarnsAndFallsBackToStderr) {
  std::string err_path = path("stderr");
  std::fflush(stderr);
  int saved = dup(2);
  int fd = open(err_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  dup2(fd, 2);
  close(fd);
  std::string bad = path("file-not-dir");
  { std::ofstream f(bad); }
  configure(make_log(bad + "/x.log", "text"), {});
  root().info("after");
  configure(std::nullopt, {});
  dup2(saved, 2);
  close(saved);
  EXPECT_EQ(read_file(err_path), "time=\"2026-12-01T11:11:52Z\" level=warning msg=\"open " + bad +
                                     "/x.log: not a directory\"\n"
                                     "time=\"2026-12-01T11:11:52Z\" level=info msg=after\n");
}

TEST_F(LogTest, NoneDiscards) {
  configure(make_log("none"), {});
  root().error("nothing");  // nothing to check but that it is not written anywhere / no crash
  EXPECT_FALSE(enabled(Level::fatal));
}

// ---- rotation --------------------------------------------------------------------------------

TEST_F(LogTest, BackupNames) {
  auto t = fixed_now();
  EXPECT_EQ(backup_name("/var/log/gost.log", t, false),
            "/var/log/gost-2026-12-01T11-11-52.261.log");
  EXPECT_EQ(backup_name("/var/log/gost", t, false), "/var/log/gost-2026-12-01T11-11-52.261");
  EXPECT_EQ(backup_name("a.d/gost", t, false), "a.d/gost-2026-12-01T11-11-52.261");
  EXPECT_EQ(backup_name("g.tar.gz", t, false), "g.tar-2026-12-01T11-11-52.261.gz");
  EXPECT_EQ(backup_name("/gost.log", t, false), "/gost-2026-12-01T11-11-52.261.log");
  setenv("TZ", "Asia/Kolkata", 1);
  tzset();
  EXPECT_EQ(backup_name("/l/gost.log", t, true), "/l/gost-2026-12-01T16-41-52.261.log");
  EXPECT_EQ(backup_name("/l/gost.log", t, false), "/l/gost-2026-12-01T11-11-52.261.log");
  setenv("TZ", "UTC", 1);
  tzset();
}

const std::regex kBackup(R"(app-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})\.log(\.gz)?)");

std::vector<std::string> backups(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names)
    if (n != "app.log") out.push_back(n);
  return out;
}

TEST_F(LogTest, RotatesBySizeAndKeepsMaxBackups) {
  RotationOptions o;
  o.filename = path("logs/app.log");
  o.max_bytes = 1000;
  o.max_backups = 2;
  {
    RotatingFile f(o);
    std::string line(99, 'x');
    line += '\n';
    for (int i = 0; i < 55; ++i) {
      line.replace(0, 3, fmt_int(i));
      f.write(line);
    }
  }
  wait_rotation_idle();
  auto names = list_dir(path("logs"));
  auto b = backups(names);
  ASSERT_EQ(b.size(), 2u) << ::testing::PrintToString(names);
  for (const auto& n : b) EXPECT_TRUE(std::regex_match(n, kBackup)) << n;
  // 55 lines of 100 bytes, 10 per file: the current file holds 50..54, the backups 40..49, 30..39.
  auto cur = split_lines(read_file(path("logs/app.log")));
  ASSERT_EQ(cur.size(), 5u);
  EXPECT_EQ(cur[0].substr(0, 3), "050");
  auto newest = split_lines(read_file(path("logs/" + b[1])));
  auto older = split_lines(read_file(path("logs/" + b[0])));
  ASSERT_EQ(newest.size(), 10u);
  ASSERT_EQ(older.size(), 10u);
  EXPECT_EQ(newest[0].substr(0, 3), "040");
  EXPECT_EQ(older[0].substr(0, 3), "030");
  // A backup is named by the rotation time, in UTC.
  std::smatch m;
  ASSERT_TRUE(std::regex_match(b[1], m, kBackup));
  auto now = std::chrono::system_clock::now();
  std::string lo = backup_name("app.log", now - 60s, false);
  std::string hi = backup_name("app.log", now + 1s, false);
  EXPECT_LE(lo, b[1]);
  EXPECT_GE(hi, b[1]);
}

TEST_F(LogTest, AppendsToExistingFileWithRoom) {
  std::string p = path("app.log");
  {
    std::ofstream f(p);
    f << "old\n";
  }
  RotationOptions o;
  o.filename = p;
  o.max_bytes = 1000;
  {
    RotatingFile f(o);
    f.write("new\n");
  }
  EXPECT_EQ(read_file(p), "old\nnew\n");
  // No room left for the next line: rotated at open.
  o.max_bytes = 10;
  {
    RotatingFile f(o);
    f.write("more\n");
  }
  EXPECT_EQ(read_file(p), "more\n");
  EXPECT_EQ(backups(list_dir(dir_)).size(), 1u);
}

std::string gunzip(const std::string& p) {
  gzFile gz = gzopen(p.c_str(), "rb");
  if (!gz) return "<gzopen failed>";
  std::string out;
  char buf[4096];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  int end = 0;
  gzerror(gz, &end);
  gzclose(gz);
  if (n < 0 || end != Z_OK) return "<gzread failed>";
  return out;
}

TEST_F(LogTest, CompressesBackups) {
  RotationOptions o;
  o.filename = path("app.log");
  o.max_bytes = 1000;
  o.compress = true;
  std::string all;
  {
    RotatingFile f(o);
    for (int i = 0; i < 35; ++i) {
      std::string line = fmt_int(i) + std::string(96, 'y') + "\n";
      all += line;
      f.write(line);
    }
  }
  wait_rotation_idle();
  auto b = backups(list_dir(dir_));
  ASSERT_EQ(b.size(), 3u) << ::testing::PrintToString(b);
  std::string joined;
  for (const auto& n : b) {
    ASSERT_TRUE(n.size() > 3 && n.substr(n.size() - 3) == ".gz") << n;
    std::string raw = read_file(path(n));
    ASSERT_GE(raw.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(raw[1]), 0x8b);
    joined += gunzip(path(n));
  }
  joined += read_file(path("app.log"));
  EXPECT_EQ(joined, all);
  // And the system's gzip agrees the files are valid.
  if (access("/bin/gzip", X_OK) == 0) {
    std::string cmd = "/bin/gzip -t '" + path(b[0]) + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
}

TEST_F(LogTest, RemovesBackupsOlderThanMaxAge) {
  std::string old_backup = path("app-2001-02-03T04-05-06.789.log");
  std::string old_gz = path("app-2001-02-03T04-05-07.000.log.gz");
  std::string other = path("app-notatime.log");
  for (auto* p : {&old_backup, &old_gz, &other}) std::ofstream(*p) << "x\n";
  RotationOptions o;
  o.filename = path("app.log");
  o.max_bytes = 1000;
  o.max_age_days = 1;
  {
    RotatingFile f(o);
    f.write("a\n");  // the first open runs the cleanup too
  }
  wait_rotation_idle();
  EXPECT_EQ(list_dir(dir_), (std::vector<std::string>{"app-notatime.log", "app.log"}));
}

TEST_F(LogTest, RotationThroughConfigure) {
  config::Log l = make_log(path("r/app.log"), "text");
  config::Rotation r;
  r.maxSize = 1;  // MB
  r.maxBackups = 1;
  l.rotation = r;
  configure(l, {});
  std::string big(1000, 'z');
  for (int i = 0; i < 2200; ++i) root().info(big);  // ~2.2 MB: two rotations
  configure(std::nullopt, {});
  wait_rotation_idle();
  auto names = list_dir(path("r"));
  ASSERT_EQ(names.size(), 2u) << ::testing::PrintToString(names);
  EXPECT_TRUE(std::regex_match(names[0], kBackup)) << names[0];
  EXPECT_EQ(names[1], "app.log");
  struct stat st {};
  ASSERT_EQ(stat(path("r/" + names[0]).c_str(), &st), 0);
  EXPECT_LE(st.st_size, 1 << 20);
  EXPECT_GT(st.st_size, (1 << 20) - 1100);
  for (const auto& line : split_lines(read_file(path("r/app.log"))))
    EXPECT_EQ(line, "time=\"2026-12-01T11:11:52Z\" level=info msg=" + big);
}

// ---- reconfiguration under load --------------------------------------------------------------

TEST_F(LogTest, ReconfigureWhileOtherThreadsLog) {
  testing::set_clock(nullptr);
  configure(make_log(path("d0.log")), {});
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Logger a = service_logger("a", {"b"}).with("t", std::to_string(t));
      Logger d = root().with("t", std::to_string(t));
      std::int64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        a.info("named line with some text to make it longer", {{"i", i}});
        d.info("default line", {{"i", i++}});
        if (enabled(Level::debug)) d.debug("debug");
      }
    });
  config::Log rot = make_log(path("rot.log"));
  config::Rotation r;
  r.maxSize = 1;
  r.maxBackups = 3;
  r.compress = true;
  rot.rotation = r;
  auto deadline = std::chrono::steady_clock::now() + 1500ms;
  int round = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    switch (round++ % 4) {
      case 0:
        configure(make_log(path("d1.log")), {named("a", make_log(path("a.log"), "text"))});
        break;
      case 1:
        configure(rot, {named("a", make_log(path("a.log"), "json", "debug")),
                        named("b", make_log(path("b.log"), "text"))});
        break;
      case 2:
        configure(make_log(path("d2.log"), "text", "debug"), {});
        break;
      case 3:
        configure(make_log("none"), {named("b", rot)});
        break;
    }
    std::this_thread::sleep_for(2ms);
  }
  stop = true;
  for (auto& th : threads) th.join();
  configure(std::nullopt, {});
  wait_rotation_idle();
  EXPECT_GT(round, 20);
  std::size_t total = 0;
  for (const auto& n : list_dir(dir_)) {
    if (n.size() > 3 && n.substr(n.size() - 3) == ".gz") continue;
    std::string s = read_file(path(n));
    ASSERT_TRUE(s.empty() || s.back() == '\n') << n;
    for (const auto& line : split_lines(s)) {
      ++total;
      bool json = line.size() > 2 && line.front() == '{' && line.back() == '}';
      bool text = line.rfind("time=\"", 0) == 0 && line.find(" t=") != std::string::npos;
      ASSERT_TRUE(json || text) << n << ": " << line;
      // Exactly one line's worth: never two lines run together.
      ASSERT_EQ(count(line, json ? "\"level\":" : " level="), 1u) << n << ": " << line;
    }
  }
  EXPECT_GT(total, 1000u);
}

}  // namespace
}  // namespace gost::log
