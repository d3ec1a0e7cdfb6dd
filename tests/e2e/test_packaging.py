"""Packaging: --help, the man page gost.1 and the systemd unit (issue 10, item 6).

- `gost -h` prints src/app/help.txt, which documents every flag the parser accepts, each with an
  example that works (or, for GOST flags not implemented yet, is refused with a message);
- gost.1 (scripts/gen_man.py, from the same text) has every flag and renders with man;
- packaging/systemd/gost.service passes `systemd-analyze verify` (which runs `man 1 gost` for its
  Documentation=: scripts/setup.sh installs man-db; a missing tool is a skip, Not Run in ctest and
  a failure with GOST_TEST_STRICT=1), has the sandboxing it promises, and its ExecReload (SIGHUP)
  leaves gost serving.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import GostTestCase, run_gost, free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HELP_TXT = os.path.join(ROOT, "src", "app", "help.txt")
FLAGS_CPP = os.path.join(ROOT, "src", "app", "flags.cpp")
GEN_MAN = os.path.join(ROOT, "scripts", "gen_man.py")
UNIT = os.path.join(ROOT, "packaging", "systemd", "gost.service")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# docs/PROTOCOLS.md "cli: flags": GOST's flags. The first group works here; the second (a help
# section "Not implemented yet", absent when empty) is refused with a message.
IMPLEMENTED = {"L", "F", "C", "O", "D", "DD", "V", "h", "help", "metrics", "api", "R"}
NOT_IMPLEMENTED = set()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def sections(text):
    """{heading: [lines]} of the help text (a heading is an unindented line ending with ':')."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def entries(lines):
    """[(term, [body lines])] of a section: terms are indented by 2, bodies by 4 or more."""
    out = []
    for line in lines:
        if line.startswith("  ") and not line.startswith("    "):
            out.append((line.strip(), []))
        elif line.startswith("    ") and out:
            out[-1][1].append(line.strip())
    return out


def flag_names(term):
    """'-h, -help' -> ['h', 'help']; '-L service' -> ['L']."""
    return [part.split(" ")[0].lstrip("-") for part in term.split(", ")]


def documented_flags(text):
    secs = sections(text)
    working = {}
    for term, body in entries(secs["Flags"]):
        for name in flag_names(term):
            working[name] = body
    refused = {}
    for term, body in entries(secs.get("Not implemented yet", [])):
        if term.startswith("-"):
            for name in flag_names(term):
                refused[name] = body
    return working, refused


def example_commands(text):
    """Every example command line of the help text, as (label, command) in order."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"(Example[^:]*): (gost .*)", s)
        if m:
            out.append((m.group(1), m.group(2)))
        elif s.startswith("gost ") and line.startswith("    "):
            out.append(("Examples", s))
    return out


class HelpTest(unittest.TestCase):
    def test_help_prints_help_txt(self):
        want = read(HELP_TXT).encode()
        for flag in ("-h", "-help", "--help", "--h", "-h=true"):
            cp = run_gost([flag], timeout=10)
            self.assertEqual(cp.returncode, 0, (flag, cp.stderr))
            self.assertEqual(cp.stdout, want, flag)
            self.assertEqual(cp.stderr, b"", flag)

    def test_bad_flag_prints_error_and_help_to_stderr(self):
        cp = run_gost(["-no-such-flag"], timeout=10)
        self.assertEqual(cp.returncode, 2)
        self.assertEqual(cp.stdout, b"")
        self.assertIn(b"flag provided but not defined: -no-such-flag", cp.stderr)
        self.assertIn(read(HELP_TXT).encode(), cp.stderr)

    def test_every_flag_documented_with_example(self):
        working, refused = documented_flags(read(HELP_TXT))
        self.assertEqual(set(working), IMPLEMENTED)
        self.assertEqual(set(refused), NOT_IMPLEMENTED)
        secs = sections(read(HELP_TXT))
        for term, body in entries(secs["Flags"]) + entries(secs.get("Not implemented yet", [])):
            names = flag_names(term)  # a flag and its aliases (-h, -help)
            examples = [b.split(": ", 1)[1] for b in body if b.startswith("Example")]
            self.assertTrue(examples, "%s has no example" % term)
            uses = re.compile(r"(^|\s)--?(%s)(\s|=|$)" % "|".join(map(re.escape, names)))
            self.assertTrue(any(uses.search(e) for e in examples),
                            "%s: its example does not use it: %r" % (term, examples))
            text = " ".join(b for b in body if not b.startswith("Example"))
            self.assertTrue(text, "%s has no description" % term)

    def test_documented_flags_are_the_parsers(self):
        # Every name the parser accepts (src/app/flags.cpp) is documented, and nothing else is.
        parsed = set(re.findall(r'name == "([A-Za-z]+)"', read(FLAGS_CPP)))
        self.assertTrue(parsed >= {"L", "F"}, parsed)
        working, refused = documented_flags(read(HELP_TXT))
        self.assertEqual(parsed, set(working) | set(refused))

    def test_api_and_reload_flags(self):
        # -api becomes the api section (docs/PROTOCOLS.md "cli: flags", step 6); -R takes a Go
        # duration.
        cp = run_gost(["-L", "http://:8080", "-api", "u:p@127.0.0.1:18080?pathPrefix=/api&accesslog=1",
                       "-R", "30s", "-O", "yaml"], timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn(b"api:\n  addr: 127.0.0.1:18080\n  pathPrefix: /api\n  accesslog: true\n"
                      b"  auth:\n    username: u\n    password: p\n", cp.stdout)
        cp = run_gost(["-L", "http://127.0.0.1:%d" % free_port(), "-R", "soon"], timeout=10)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertIn(b"-R: invalid duration", cp.stderr)

    def test_examples_work(self):
        # Each example, run with -O yaml (nothing is bound), is accepted; GOST-only examples are
        # refused with status 1. Examples run in order in one directory, so "... -O yaml >
        # gost.yaml" then "gost -C gost.yaml" work; an absolute -C path is taken from there.
        commands = example_commands(read(HELP_TXT))
        self.assertGreaterEqual(len([c for c in commands if c[0] == "Examples"]), 8)
        with tempfile.TemporaryDirectory(prefix="gost-help-") as d:
            with open(os.path.join(d, "gost.yaml"), "w") as f:
                f.write("services:\n- name: s\n  addr: :8080\n  handler:\n    type: http\n"
                        "  listener:\n    type: tcp\n")
            for label, command in commands:
                argv = shlex.split(command)
                self.assertEqual(argv[0], "gost")
                argv = argv[1:]
                redirect = None
                if ">" in argv:
                    redirect = argv[argv.index(">") + 1]
                    argv = argv[:argv.index(">")]
                for i, a in enumerate(argv[:-1]):
                    if a == "-C" and os.path.isabs(argv[i + 1]):
                        argv[i + 1] = os.path.basename(argv[i + 1])
                if not set(argv) & {"-O", "-V", "-h", "--help", "-help"}:
                    argv += ["-O", "yaml"]
                cp = subprocess.run([gostlib.GOST_BIN] + argv, cwd=d, env=gostlib.clean_env(),
                                    stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
                if label == "Example (GOST)":
                    self.assertEqual(cp.returncode, 1, (command, cp.stderr))
                    self.assertIn(b"not supported", cp.stderr, command)
                    continue
                self.assertEqual(cp.returncode, 0, (command, cp.stderr))
                self.assertNotEqual(cp.stdout, b"", command)
                if redirect:
                    with open(os.path.join(d, redirect), "wb") as f:
                        f.write(cp.stdout)


class ManPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="gost-man-")
        cls.fresh = os.path.join(cls.tmp.name, "gost.1")
        subprocess.run([PYTHON, GEN_MAN, HELP_TXT, "0.0", cls.fresh], check=True, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def built(self):
        """build/gost.1 (made by the build's `man` target) when it is there, else a fresh one."""
        path = os.path.join(os.path.dirname(gostlib.GOST_BIN), "gost.1")
        return path if os.path.exists(path) else self.fresh

    def test_built_page_is_current(self):
        path = os.path.join(os.path.dirname(gostlib.GOST_BIN), "gost.1")
        if not os.path.exists(path):
            self.skipTest("%s not built (the build's `man` target makes it)" % path)
        strip = lambda t: re.sub(r'^\.TH .*$', "", t, flags=re.M)  # noqa: E731 (version)
        self.assertEqual(strip(read(path)), strip(read(self.fresh)),
                         "gost.1 is older than src/app/help.txt: rebuild")

    def test_page_has_sections_and_every_flag(self):
        page = read(self.built())
        self.assertRegex(page, r'(?m)^\.TH GOST 1 ')
        for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", '"OPTIONS"', '"EXAMPLES"'):
            self.assertRegex(page, r'(?m)^\.SH %s$' % re.escape(sec))
        for name in IMPLEMENTED | NOT_IMPLEMENTED:
            self.assertRegex(page, r'\\fB\\-%s\\fR' % re.escape(name), "-%s" % name)

    def test_man_renders_every_flag_and_example(self):
        man = shutil.which("man")
        if not man:
            self.skipTest("man is not installed (Debian package man-db)")
        env = gostlib.clean_env()
        env.update(MANWIDTH="100", LANG="C.UTF-8", MAN_KEEP_FORMATTING="")
        cp = subprocess.run([man, "--warnings", "-l", self.built()], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stderr.decode(), "", "troff warnings")
        text = re.sub(r".\x08", "", cp.stdout.decode())  # overstrike bold/underline, if any
        text = text.replace("\u2010", "-").replace("\u2212", "-")
        self.assertIn("GOST(1)", text)
        working, refused = documented_flags(read(HELP_TXT))
        for term, _ in entries(sections(read(HELP_TXT))["Flags"]):
            self.assertIn(term, text)
        for name in refused:
            self.assertRegex(text, r"(?m)^\s+-%s " % re.escape(name))
        for _, command in example_commands(read(HELP_TXT)):
            self.assertIn(command, text)


def unit_lines(text):
    """[(key, value)] of a unit file, in order (keys repeat)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.append((k.strip(), v.strip()))
    return out


class SystemdUnitTest(GostTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="gost-unit-")
        # The unit as shipped, with ExecStart pointing at the binary under test (verify wants it
        # to exist) and man:gost(1) findable (verify runs `man` for Documentation=).
        cls.unit = os.path.join(cls.tmp.name, "gost.service")
        text = read(UNIT)
        assert "ExecStart=/usr/bin/gost " in text
        with open(cls.unit, "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/gost ", "ExecStart=%s " % gostlib.GOST_BIN))
        man1 = os.path.join(cls.tmp.name, "man", "man1")
        os.makedirs(man1)
        subprocess.run([PYTHON, GEN_MAN, HELP_TXT, "0.0", os.path.join(man1, "gost.1")],
                       check=True, timeout=30)
        cls.env = gostlib.clean_env()
        cls.env["MANPATH"] = os.path.join(cls.tmp.name, "man")
        cls.analyze = shutil.which("systemd-analyze")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def need_analyze(self):
        if not self.analyze:
            self.skipTest("systemd-analyze is not installed (Debian package systemd, "
                          "scripts/setup.sh installs it): unit not verified")

    def test_systemd_analyze_verify(self):
        self.need_analyze()
        cp = subprocess.run([self.analyze, "verify", self.unit], env=self.env,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        out = (cp.stdout + cp.stderr).decode(errors="replace")
        self.assertEqual(cp.returncode, 0, out)
        self.assertNotIn("gost.service", out)

    def test_systemd_analyze_verify_catches_errors(self):
        # The check is real: a unit whose binary is missing or with a bad directive fails.
        self.need_analyze()
        bad = os.path.join(self.tmp.name, "bad", "gost.service")
        os.makedirs(os.path.dirname(bad), exist_ok=True)
        with open(bad, "w") as f:
            f.write(read(self.unit).replace(gostlib.GOST_BIN, "/nonexistent/gost"))
        cp = subprocess.run([self.analyze, "verify", bad], env=self.env,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self.assertNotEqual(cp.returncode, 0, cp.stderr)

    def test_security_exposure_low(self):
        self.need_analyze()
        cp = subprocess.run([self.analyze, "security", "--offline=true", "--no-pager",
                             self.unit], env=self.env, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=120)
        out = (cp.stdout + cp.stderr).decode(errors="replace")
        m = re.search(r"Overall exposure level for gost\.service: ([0-9.]+)", out)
        if cp.returncode != 0 and not m and "offline" in out:
            self.skipTest("this systemd-analyze has no --offline")
        self.assertTrue(m, out)
        self.assertLessEqual(float(m.group(1)), 2.5, out)

    def test_sandboxing_directives(self):
        kv = unit_lines(read(UNIT))
        d = {}
        for k, v in kv:
            d.setdefault(k, []).append(v)
        one = {k: v[-1] for k, v in d.items()}
        self.assertIn(one["Type"], ("simple", "exec"))
        self.assertEqual(one["ExecStart"], "/usr/bin/gost -C /etc/gost/gost.yaml")
        self.assertEqual(one["ExecReload"], "/bin/kill -HUP $MAINPID")
        want = {"DynamicUser": "yes", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
                "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                "NoNewPrivileges": "yes", "Restart": "on-failure", "LimitNOFILE": "1048576",
                "ConfigurationDirectory": "gost", "LogsDirectory": "gost"}
        for k, v in want.items():
            self.assertEqual(one.get(k), v, k)
        self.assertEqual(set(one["RestrictAddressFamilies"].split()),
                         {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"})
        self.assertEqual(one["Documentation"].split()[0], "man:gost(1)")

    def test_exec_reload_keeps_serving(self):
        # `systemctl reload gost` runs ExecReload with $MAINPID: gost must survive SIGHUP and
        # keep serving (what it reloads is another test's business).
        reload_cmd = dict(unit_lines(read(UNIT)))["ExecReload"]
        port = free_port()
        p = self.start_gost("-L", "http://127.0.0.1:%d" % port, port=port)
        argv = [a.replace("$MAINPID", str(p.pid)) for a in shlex.split(reload_cmd)]
        subprocess.run(argv, check=True, timeout=10)
        # the reload is asynchronous: wait for its log line (with a deadline), not a fixed time
        self.assertTrue(gostlib.wait_until(lambda: "config reloaded" in p.stderr_text()
                                           or not p.alive(), 10), p.stderr_text()[-2000:])
        self.assertAlive(p)
        self.assertEqual(p.stderr_text().count("config reloaded"), 1, p.stderr_text()[-2000:])
        origin = gostlib.OriginServer()
        self.addCleanup(origin.close)
        r = gostlib.curl("http://127.0.0.1:%d/x" % origin.port, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "200", r)


class InstallTest(unittest.TestCase):
    def test_cmake_install(self):
        # `cmake --install` puts the binary, gost.1 and the unit (ExecStart= the installed
        # binary) in place.
        build = os.path.dirname(gostlib.GOST_BIN)
        cache = os.path.join(build, "CMakeCache.txt")
        cmake = shutil.which("cmake")
        if not (cmake and os.path.exists(cache) and os.path.exists(os.path.join(build, "gost.1"))):
            self.skipTest("not a complete CMake build directory: %s" % build)
        prefix = re.search(r"(?m)^CMAKE_INSTALL_PREFIX:PATH=(.*)$", read(cache)).group(1)
        with tempfile.TemporaryDirectory(prefix="gost-install-") as dest:
            env = gostlib.clean_env()
            env["DESTDIR"] = dest
            cp = subprocess.run([cmake, "--install", build], env=env, capture_output=True,
                                timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            root = dest + prefix
            self.assertTrue(os.access(os.path.join(root, "bin", "gost"), os.X_OK))
            self.assertEqual(read(os.path.join(root, "share", "man", "man1", "gost.1")),
                             read(os.path.join(build, "gost.1")))
            unit = read(os.path.join(root, "lib", "systemd", "system", "gost.service"))
            self.assertIn("\nExecStart=%s/bin/gost -C /etc/gost/gost.yaml\n" % prefix, unit)
            self.assertEqual(unit.replace("ExecStart=%s/bin/gost " % prefix,
                                          "ExecStart=/usr/bin/gost "), read(UNIT))


if __name__ == "__main__":
    gostlib.main()
