"""The kvpool .deb on this machine (issue 18, "Operable like Redis").

Builds the package with cpack from the build directory the server under test
came from (KVPOOL_SERVER=<build>/server/kvpool-server), installs it with
dpkg, checks what it put where, starts the installed binary the way the
installed kvpool.service would (its ExecStart, as its User=, with a
NOTIFY_SOCKET standing in for systemd, only the port added), talks to it with
redis-py, rotates its log with the packaged logrotate file, stops it,
removes and purges the package and checks that nothing is left. dpkg needs root: CI runs this once, as root, after the plain build
(scripts/test.sh), not in the pool or sanitizer passes. Whatever it needs and
does not find is a failure, not a skip.

The tests run in file order and share one installation (the module fixture);
the last ones remove and purge it, and the fixture purges it anyway if a test
failed before.
"""
import grp
import gzip
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis

PKG = "kvpool"
BIN = Path("/usr/bin/kvpool-server")
CONF = Path("/etc/kvpool/kvpool.conf")
LOGROTATE = Path("/etc/logrotate.d/kvpool")
UNIT = Path("/lib/systemd/system/kvpool.service")
DOC = Path("/usr/share/doc/kvpool")
STATE_DIR = Path("/var/lib/kvpool")
LOG_DIR = Path("/var/log/kvpool")
LOG_FILE = LOG_DIR / "kvpool.log"
# Every path the package holds (files and the directories only it makes).
PACKAGE_FILES = {
    str(BIN), str(CONF), str(LOGROTATE), str(UNIT),
    str(DOC / "README.md"), str(DOC / "LICENSE"), str(DOC / "examples/grafana-dashboard.json"),
    str(DOC / "copyright"), str(DOC / "changelog.gz"),
}
# libkvpool-rdma.so, the RDMA transport the server dlopens: in <libdir>/kvpool
# (lib/kvpool, or lib/<triplet>/kvpool in a build configured for /usr).
PLUGIN_RE = r"/usr/lib/(.+/)?kvpool/libkvpool-rdma\.so"
START_TIMEOUT = 30.0
HOST = "127.0.0.1"


def run(*argv: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def installed_version() -> str:
    """The installed kvpool package's version, "" when it is not installed."""
    proc = run("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", PKG, check=False)
    status, _, version = proc.stdout.partition(" ")
    return version if proc.returncode == 0 and status == "installed" else ""


def package_state() -> str:
    """dpkg's status of kvpool: installed, config-files, not-installed."""
    proc = run("dpkg-query", "-W", "-f=${db:Status-Status}", PKG, check=False)
    return proc.stdout if proc.returncode == 0 and proc.stdout else "not-installed"


def processes_of(exe: Path) -> list[int]:
    """Pids whose executable is `exe` (also once dpkg deleted the file)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "exe")
        except OSError:
            continue
        if target in (str(exe), f"{exe} (deleted)"):
            pids.append(int(entry.name))
    return pids


def free_port() -> int:
    """A free loopback port P with P+10000 (the node's pool port) free too."""
    def free(p: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind((HOST, p))
                return True
            except OSError:
                return False
    for _ in range(500):
        p = random.randint(20000, 45000)
        if free(p) and free(p + 10000):
            return p
    raise AssertionError("no free port pair found")


def build_dir() -> Path:
    server = os.environ.get("KVPOOL_SERVER")
    assert server, "KVPOOL_SERVER must name <build>/server/kvpool-server (the plain build)"
    build = Path(server).resolve().parent.parent
    assert (build / "CPackConfig.cmake").is_file(), f"{build} has no CPackConfig.cmake: not a CMake build dir?"
    return build


def purge() -> None:
    """Stops what the installed binary runs and purges the package."""
    for pid in processes_of(BIN):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if package_state() != "not-installed":
        run("dpkg", "--purge", PKG)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    """The .deb cpack builds from the server's build directory."""
    assert os.geteuid() == 0, "dpkg -i needs root (CI runs this as root)"
    for tool in ("cpack", "dpkg", "dpkg-deb", "dpkg-shlibdeps", "setpriv", "logrotate"):
        assert shutil.which(tool), f"{tool} is missing (scripts/install-deps.sh --test installs it)"
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    run("cpack", "-G", "DEB", "--config", str(build_dir() / "CPackConfig.cmake"), "-B", str(out))
    debs = list(out.glob("kvpool_*.deb"))
    assert len(debs) == 1, f"cpack made {debs} in {out}"
    print(f"cpack: {debs[0].name} in {time.monotonic() - t0:.1f}s")
    return debs[0]


@pytest.fixture(scope="module")
def installed(deb):
    """The package, installed with dpkg -i; purged after the module."""
    assert package_state() == "not-installed", (
        f"a kvpool package is already on this machine ({package_state()}): "
        "this test will not replace it; dpkg --purge kvpool first")
    try:
        run("dpkg", "-i", str(deb))
        yield deb
    finally:
        purge()


def field(deb: Path, name: str) -> str:
    return run("dpkg-deb", "-f", str(deb), name).stdout.strip()


def test_package_fields(deb):
    assert field(deb, "Package") == PKG
    version = run(os.environ["KVPOOL_SERVER"], "--version").stdout.split()[1]
    assert version == f"v={field(deb, 'Version')}"
    depends = [d.strip().split()[0] for d in field(deb, "Depends").split(",")]
    # adduser for postinst; the rest from dpkg-shlibdeps.
    for lib in ("adduser", "libc6", "libstdc++6", "libevent-core-2.1-7", "libspdlog1.10-fmt9",
                "libfmt9", "libsystemd0", "libibverbs1", "librdmacm1"):
        assert lib in depends, f"{lib} not in Depends: {depends}"
    assert "<" in field(deb, "Maintainer")
    assert field(deb, "Description").startswith("Redis-protocol cache")
    control = run("dpkg-deb", "-I", str(deb)).stdout
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert script in control, control


def test_copyright_and_changelog_as_debian_policy_asks(deb, tmp_path):
    """/usr/share/doc/kvpool/copyright in the machine-readable format, naming
    the license of every file; changelog.gz (a native package: the version
    has no Debian revision) compressed with gzip -9n, whose newest entry is
    the package's version."""
    run("dpkg-deb", "-x", str(deb), str(tmp_path / "root"))
    doc = tmp_path / "root" / str(DOC).lstrip("/")
    paragraphs = [p for p in (doc / "copyright").read_text().split("\n\n") if p.strip()]
    header = dict(line.split(": ", 1) for line in paragraphs[0].splitlines() if ": " in line)
    assert header["Format"] == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    assert header["Upstream-Name"] == PKG
    files = [p for p in paragraphs if p.startswith("Files:")]
    assert files and all("\nLicense: Apache-2.0" in p for p in files), files
    assert any(p.startswith("License: Apache-2.0\n") for p in paragraphs), "no license text"
    assert "Apache License" in (doc / "LICENSE").read_text()
    gz = (doc / "changelog.gz").read_bytes()
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\0\0\0\0", "not gzip -n (a timestamp is in it)"
    (tmp_path / "changelog").write_bytes(gzip.decompress(gz))
    version = run("dpkg-parsechangelog", "-l", str(tmp_path / "changelog"), "-S", "Version")
    assert version.stdout.strip() == field(deb, "Version")
    assert run("dpkg-parsechangelog", "-l", str(tmp_path / "changelog"), "-S", "Source").stdout.strip() == PKG


def test_package_holds_only_the_server_and_its_files(deb, tmp_path):
    listing = run("dpkg-deb", "-c", str(deb)).stdout.splitlines()
    files = {line.split()[-1].lstrip(".") for line in listing if not line.startswith("d")}
    # The RDMA transport plugin the server dlopens, in <libdir>/kvpool.
    plugins = {f for f in files if re.fullmatch(PLUGIN_RE, f)}
    assert len(plugins) == 1, f"no single RDMA plugin in the package: {sorted(files)}"
    assert files - plugins == PACKAGE_FILES
    run("dpkg-deb", "-e", str(deb), str(tmp_path / "control"))
    assert (tmp_path / "control/conffiles").read_text().split() == [str(CONF), str(LOGROTATE)]


def test_cmake_install_under_another_prefix(tmp_path):
    """cmake --install keeps everything under a prefix other than /usr, and
    the unit it installs points at the files there."""
    prefix = "/opt/kvpool-test"
    env = dict(os.environ, DESTDIR=str(tmp_path))
    run("cmake", "--install", str(build_dir()), "--prefix", prefix, env=env)
    root = tmp_path / prefix.lstrip("/")
    files = {"/" + str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    plugins = {f for f in files if re.fullmatch(PLUGIN_RE.replace("/usr", prefix, 1), f)}
    assert len(plugins) == 1, sorted(files)
    assert files - plugins == {
        f"{prefix}/bin/kvpool-server", f"{prefix}/etc/kvpool/kvpool.conf",
        f"{prefix}/etc/logrotate.d/kvpool", f"{prefix}/lib/systemd/system/kvpool.service",
        f"{prefix}/share/doc/kvpool/README.md", f"{prefix}/share/doc/kvpool/LICENSE",
        f"{prefix}/share/doc/kvpool/examples/grafana-dashboard.json",
        f"{prefix}/share/doc/kvpool/copyright", f"{prefix}/share/doc/kvpool/changelog.gz"}
    unit = (root / "lib/systemd/system/kvpool.service").read_text()
    assert (f"\nExecStart={prefix}/bin/kvpool-server {prefix}/etc/kvpool/kvpool.conf "
            "--supervised systemd --daemonize no\n") in unit
    assert "\nlogfile /var/log/kvpool/kvpool.log\n" in (root / "etc/kvpool/kvpool.conf").read_text()


def test_installed_files_user_and_directories(installed):
    assert installed_version() == field(installed, "Version")
    for path in PACKAGE_FILES:
        assert Path(path).is_file(), path
    assert os.access(BIN, os.X_OK)
    user = pwd.getpwnam("kvpool")
    assert user.pw_uid < 1000, "kvpool is a system user"
    assert user.pw_dir == str(STATE_DIR)
    assert grp.getgrgid(user.pw_gid).gr_name == "kvpool"
    for d in (STATE_DIR, LOG_DIR):
        st = d.stat()
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == user.pw_uid and st.st_gid == user.pw_gid, d
        assert stat.S_IMODE(st.st_mode) == 0o750, (d, oct(st.st_mode))
    # The configuration may hold requirepass: root's, readable by the node only.
    st = CONF.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, user.pw_gid, 0o640)
    text = CONF.read_text()
    assert "\ndir /var/lib/kvpool\n" in text and "\nlogfile /var/log/kvpool/kvpool.log\n" in text
    assert "# maxmemory 0\n" in text, "the packaged file lists every option at its default"
    # The installed binary accepts the packaged file as it is.
    check = run(str(BIN), "--check-config", str(CONF))
    assert check.stdout.splitlines()[-1] == "2 used, 0 ignored (0 with a warning), 0 invalid", check.stdout


def unit_lines() -> dict[str, str]:
    lines = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            lines.setdefault(k, v)
    return lines


def test_unit(installed):
    unit = unit_lines()
    assert unit["Type"] == "notify"
    assert unit["ExecStart"] == f"{BIN} {CONF} --supervised systemd --daemonize no"
    assert unit["User"] == "kvpool" and unit["Group"] == "kvpool"
    assert unit["StateDirectory"] == "kvpool" and unit["LogsDirectory"] == "kvpool"
    assert unit["WantedBy"] == "multi-user.target"
    # systemd's own check of the unit as installed (no running systemd needed).
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing (install-deps.sh --test)"
    proc = run("systemd-analyze", "verify", "--man=no", str(UNIT), check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if "kvpool" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


class NotifySocket:
    """An abstract unix datagram socket standing in for systemd's
    NOTIFY_SOCKET (abstract: the kvpool user can send to it)."""

    def __init__(self):
        self.name = f"@kvpool-package-test-{os.getpid()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.received: list[str] = []

    def wait_for(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(state in m.split("\n") for m in self.received):
            left = deadline - time.monotonic()
            assert left > 0, f"no {state} after {timeout}s; got {self.received}"
            self.sock.settimeout(left)
            try:
                self.received.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass


def rotate_the_log(tmp_path: Path, port: int) -> None:
    """logrotate -f with the packaged file: the log is renamed to .1, its
    postrotate HUPs the node, which reopens kvpool.log."""
    assert shutil.which("logrotate"), "logrotate is missing (install-deps.sh --test)"
    run("logrotate", "-f", "-s", str(tmp_path / "logrotate.state"), str(LOGROTATE))
    rotated = LOG_DIR / "kvpool.log.1"
    assert f"port {port}" in rotated.read_text()
    deadline = time.monotonic() + 10
    while "Received SIGHUP, reopened the log file" not in LOG_FILE.read_text():
        assert time.monotonic() < deadline, f"no reopen after logrotate:\n{LOG_FILE.read_text()}"
        time.sleep(0.05)
    st = LOG_FILE.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)) == ("kvpool", 0o640)


def test_node_runs_from_the_packaged_config(installed, tmp_path):
    """ExecStart of the installed unit, as its User= and Group=, with the
    packaged kvpool.conf; only --port is added."""
    port = free_port()
    argv = shlex.split(unit_lines()["ExecStart"]) + ["--port", str(port)]
    notify = NotifySocket()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": notify.name}
    proc = subprocess.Popen(
        ["setpriv", "--reuid=kvpool", "--regid=kvpool", "--init-groups", "--"] + argv,
        cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        try:
            notify.wait_for("READY=1", START_TIMEOUT)
        except AssertionError:
            proc.kill()
            out = proc.communicate(timeout=10)[0].decode(errors="replace")
            log = LOG_FILE.read_text() if LOG_FILE.exists() else "(no log file)"
            raise AssertionError(f"node not ready: {notify.received}\noutput:\n{out}\nlog:\n{log}")
        r = redis.Redis(host=HOST, port=port, socket_timeout=5)
        assert r.set("package:key", b"v" * 1000)
        assert r.get("package:key") == b"v" * 1000
        info = r.info("server")
        assert info["process_supervised"] == "systemd"
        assert info["process_id"] == proc.pid  # setpriv execs the binary
        assert r.config_get("dir") == {"dir": str(STATE_DIR)}
        assert os.readlink(f"/proc/{proc.pid}/cwd") == str(STATE_DIR)
        assert os.stat(f"/proc/{proc.pid}").st_uid == pwd.getpwnam("kvpool").pw_uid
        # It logs where the packaged file says, as the kvpool user.
        assert LOG_FILE.stat().st_uid == pwd.getpwnam("kvpool").pw_uid
        assert f"ready to accept connections on {HOST} port {port}" in LOG_FILE.read_text()
        rotate_the_log(tmp_path, port)
        assert r.get("package:key") == b"v" * 1000
        r.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        notify.wait_for("STOPPING=1", 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        notify.sock.close()
    assert processes_of(BIN) == []


def test_installed_server_loads_the_installed_rdma_plugin(installed):
    """With `transport rdma` (a pool of two, only this node running) the
    installed binary finds the installed plugin by itself, as the packaged
    unit would run it; without an RDMA device it falls back to tcp."""
    plugins = [p for p in Path("/usr/lib").rglob("libkvpool-rdma.so") if re.fullmatch(PLUGIN_RE, str(p))]
    assert len(plugins) == 1, plugins
    port, other = free_port(), free_port()
    log = Path(f"/tmp/kvpool-package-rdma-{os.getpid()}.log")
    proc = subprocess.Popen(
        [str(BIN), "--port", str(port), "--maxmemory", "64mb", "--logfile", str(log),
         "--pool-nodes", f"{HOST}:{port} {HOST}:{other}", "--transport", "rdma",
         "--transport-fallback", "yes"],
        cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(host=HOST, port=port, socket_timeout=5)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log.read_text() if log.exists() else "exited, no log"
            try:
                if r.ping():
                    break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
                time.sleep(0.05)
        text = log.read_text()
        loaded = re.search(r"loaded the RDMA transport plugin (\S+)", text)
        assert loaded and os.path.realpath(loaded.group(1)) == str(plugins[0]), text
        assert r.info("pool")["transport"] in ("tcp", "rdma")
        r.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.unlink(missing_ok=True)


def test_reinstall_keeps_the_edited_config(installed):
    """dpkg -i over the installed package (postinst with the user and the
    directories already there) keeps an edited conffile as it was."""
    uid = pwd.getpwnam("kvpool").pw_uid
    with CONF.open("a") as f:
        f.write("\n# edited by test_package\nmaxmemory 64mb\n")
    edited = CONF.read_text()
    run("dpkg", "-i", str(installed))  # no prompt: the package's conffile is unchanged
    assert installed_version() == field(installed, "Version")
    assert CONF.read_text() == edited
    assert pwd.getpwnam("kvpool").pw_uid == uid
    st = CONF.stat()
    assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)) == (0, "kvpool", 0o640)


def test_remove_keeps_the_config_and_purge_removes_everything(installed):
    run("dpkg", "--remove", PKG)
    assert package_state() == "config-files"
    assert not BIN.exists() and not UNIT.exists() and not DOC.exists()
    assert CONF.is_file() and LOGROTATE.is_file(), "remove keeps the conffiles, as dpkg does"
    run("dpkg", "--purge", PKG)
    assert package_state() == "not-installed"
    for path in (BIN, CONF, CONF.parent, LOGROTATE, UNIT, DOC, STATE_DIR, LOG_DIR):
        assert not path.exists(), path
    with pytest.raises(KeyError):
        pwd.getpwnam("kvpool")
    with pytest.raises(KeyError):
        grp.getgrnam("kvpool")
    assert run("dpkg-statoverride", "--list", str(CONF), check=False).returncode != 0
    assert processes_of(BIN) == []
