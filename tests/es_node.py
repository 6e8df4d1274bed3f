"""A real single-node Elasticsearch for tests: fetch, start, wait until ready, stop.

Owns the test node's whole life: the distribution (the
``org.elasticsearch.distribution.integ-test-zip:elasticsearch`` zip from Maven
Central, fetched by ``make es`` with ``mvn dependency:copy`` into a cache and
unpacked once), a dedicated non-root user when tests run as root (the node
refuses root), a free loopback port, a small heap, the machine's Java (the zip
bundles none), readiness (cluster health yellow or green: one node never
allocates replicas) and a stop that always runs.
The data directory survives ``stop()``/``start()``, so tests can take the
node away mid-stream and bring it back.

The zip is the minimal distribution: core index, search and aggregation APIs;
no ES|QL, data streams or ingest pipelines, and ``GET /`` answers 405. It does
not provide a client API of its own beyond ``client()``; tests use the
``elasticsearch`` package against ``url``.

``python -m tests.es_node`` starts a node in the foreground for manual work.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Final

from elasticsearch import Elasticsearch

ES_VERSION: Final = "8.17.0"  # 8.x runs on the machine's Java 17
ARTIFACT: Final = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
ES_USER: Final = "v6sentry-es"
HEAP: Final = "512m"
START_TIMEOUT_S: Final = 180.0
STOP_TIMEOUT_S: Final = 60.0


class EsNodeError(Exception):
    """The node cannot be fetched, started or reached; the message says what to do."""


def cache_dir() -> Path:
    """Where the zip and the unpacked distribution live between runs.

    As root this is outside /root, because the node's own user must read it.
    """
    if env := os.environ.get("V6SENTRY_CACHE"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/v6sentry")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "v6sentry"


def zip_path() -> Path:
    return cache_dir() / f"elasticsearch-{ES_VERSION}.zip"


def fetch() -> Path:
    """Download the zip with Maven unless cached (``make es`` runs this)."""
    target = zip_path()
    if target.is_file():
        return target
    if shutil.which("mvn") is None:
        raise EsNodeError("mvn not found: Maven fetches Elasticsearch from Maven Central")
    target.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={target.parent}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 or not target.is_file():
        raise EsNodeError(f"mvn dependency:copy {ARTIFACT} failed:\n{proc.stdout}{proc.stderr}")
    return target


def home() -> Path:
    """The unpacked distribution (read-only for the node), unpacked once from the zip."""
    dest = cache_dir() / f"elasticsearch-{ES_VERSION}"
    if (dest / "bin" / "elasticsearch").is_file():
        return dest
    archive = zip_path()
    if not archive.is_file():
        raise EsNodeError(f"{archive}: not found; run `make es` (or `make setup`) to fetch it")
    tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".unpack-"))
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, tmp))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode | 0o444 | (0o111 if path.is_dir() else 0))
    inner = tmp / f"elasticsearch-{ES_VERSION}"
    for path in [inner, *inner.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    inner.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def java_home() -> Path:
    """The machine's Java (the integ-test zip has no bundled JDK)."""
    for candidate in (os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")):
        if candidate and (Path(candidate) / "bin" / "java").is_file():
            return Path(candidate)
    java = shutil.which("java")
    if java is None:
        raise EsNodeError("java not found: Elasticsearch needs Java 17 or later")
    return Path(os.path.realpath(java)).parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_user() -> pwd.struct_passwd | None:
    """The dedicated user the node runs as when we are root (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(ES_USER)


class EsNode:
    """One node in its own work directory; ``start()``/``stop()`` may repeat."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.home = home()
        self.user = _node_user()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="v6sentry-es-"))
        self.http_port = _free_port()
        self.transport_port = _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        conf = self.workdir / "config"
        if not conf.exists():
            shutil.copytree(self.home / "config", conf)
            # jvm.options names gc.log, error files and heap dumps relative to the working
            # directory the launcher picks; point them into this node's own folders.
            options = conf / "jvm.options"
            text = options.read_text(encoding="utf-8")
            text = text.replace("file=logs/", f"file={self.workdir}/logs/")
            text = text.replace("ErrorFile=logs/", f"ErrorFile={self.workdir}/logs/")
            text = text.replace("HeapDumpPath=data", f"HeapDumpPath={self.workdir}/data")
            options.write_text(text, encoding="utf-8")
        for sub in ("data", "logs", "tmp"):
            (self.workdir / sub).mkdir(exist_ok=True)
        if self.user is not None:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    @property
    def log(self) -> Path:
        return self.workdir / "logs" / "console.log"

    def _command(self) -> list[str]:
        settings = {
            "cluster.name": "v6sentry-test",
            "node.name": "v6sentry-test",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            "path.data": str(self.workdir / "data"),
            "path.logs": str(self.workdir / "logs"),
            "xpack.security.enabled": "false",
            # A nearly full CI disk must not turn every index read-only mid-test.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }
        return [str(self.home / "bin" / "elasticsearch")] + [
            f"-E{k}={v}" for k, v in settings.items()
        ]

    def start(self) -> None:
        """Start (or restart) the node and wait until every primary shard is allocated."""
        if self.proc is not None and self.proc.poll() is None:
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": str(java_home()),
            "ES_PATH_CONF": str(self.workdir / "config"),
            "ES_TMPDIR": str(self.workdir / "tmp"),
            "ES_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
            "HOME": str(self.workdir),
        }
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                self._command(),
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the whole group
                user=self.user.pw_uid if self.user else None,
                group=self.user.pw_gid if self.user else None,
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        # Yellow: every primary is allocated. A single node never allocates replicas, so
        # an index created with the default one replica keeps the cluster yellow.
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EsNodeError(
                    f"Elasticsearch exited with {self.proc.returncode}; log:\n{self._tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = resp.read()
                    if b'"status":"green"' in body or b'"status":"yellow"' in body:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise EsNodeError(
            f"Elasticsearch not ready (yellow) after {START_TIMEOUT_S:.0f} s:\n{self._tail()}"
        )

    def _tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the node's process group and wait until it is gone (data is kept)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass

    def client(self, **kwargs: object) -> Elasticsearch:
        return Elasticsearch(self.url, request_timeout=30, **kwargs)  # type: ignore[arg-type]

    def remove(self) -> None:
        """Stop and delete the work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> int:
    fetch()
    node = EsNode()
    node.start()
    print(f"Elasticsearch {ES_VERSION} at {node.url} (work dir {node.workdir}); Ctrl-C stops it")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        node.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
