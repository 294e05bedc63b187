"""Real SMS gateways for tests and the demo: Kannel (bearerbox + smsbox + fakesmsc) and an SMPP SMSC.

Like hazmon/devservers.py: every process is a foreground child on 127.0.0.1 with free ports and its
config and logs in a temp folder. Recipes and pitfalls: ../shared/COMPONENTS.md §1 (Kannel) and §2
(SMPP: the smpp34 simulator, run here as a child process by tests/support/smsc_sim.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx

from hazmon.devservers import INSTALL_SCRIPT, ServerError, free_port, wait_port

logger = logging.getLogger(__name__)

BEARERBOX_BIN = "/usr/sbin/bearerbox"
SMSBOX_BIN = "/usr/sbin/smsbox"
FAKESMSC_BIN = "/usr/lib/kannel/test/fakesmsc"


def ensure_kannel_installed() -> None:
    """Install Debian's kannel and kannel-extras (fakesmsc) when they are missing."""
    if all(Path(p).exists() for p in (BEARERBOX_BIN, SMSBOX_BIN, FAKESMSC_BIN)):
        return
    if os.geteuid() != 0 and not shutil.which("sudo"):
        raise ServerError("kannel is missing and we are not root: run scripts/install-system-deps.sh")
    cmd = ["bash", str(INSTALL_SCRIPT)]
    if os.geteuid() != 0:
        cmd.insert(0, "sudo")
    logger.info("installing Kannel: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def _stop(proc: subprocess.Popen | None, timeout_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


@dataclass(frozen=True, slots=True)
class FakeSmscMessage:
    """One MT line as fakesmsc logged it.

    Seen with Kannel 1.4.5: `<from> <to> text <plain text>`, `<from> <to> ucs-2 <url-encoded UTF-16BE>`
    and, for each part of a message Kannel split, `<from> <to> udh <url-encoded UDH> data <url-encoded
    payload>` (the payload is UTF-16BE when sendsms had coding=2; the line does not say so).
    """

    sender: str
    receiver: str
    type: str  # text | data | ucs-2 | udh
    udh: bytes
    payload: bytes
    raw: str

    @property
    def text(self) -> str:
        """The payload as text: UTF-16BE for ucs-2, else as logged."""
        if self.type == "ucs-2":
            return self.payload.decode("utf-16-be")
        return self.payload.decode("utf-8", errors="replace")

    @classmethod
    def parse(cls, line: str) -> FakeSmscMessage:
        sender, receiver, typ, rest = (line.split(" ", 3) + [""] * 4)[:4]
        udh = b""
        if typ == "udh":
            tokens = rest.split(" ")
            udh, payload = _unquote_plus(tokens[0]), _unquote_plus(tokens[-1])
        elif typ == "text":
            payload = rest.encode()
        else:
            payload = _unquote_plus(rest)
        return cls(sender, receiver, typ, udh, payload, line)


def _unquote_plus(s: str) -> bytes:
    """Kannel's octstr_url_encode writes a space (0x20, also inside UTF-16) as '+'."""
    return urllib.parse.unquote_to_bytes(s.replace("+", " "))


_GOT = re.compile(r"Got message \d+: <(.*)>\s*$")


class KannelServer:
    """bearerbox + fakesmsc + smsbox, started in that order (smsbox panics if bearerbox is not up).

    fakesmsc runs in interactive mode: each MO is a line on its stdin, each MT it receives is
    logged on its stderr (`DEBUG: Got message N: <...>`) and collected in `mt`. It polls stdin with a
    1 s select timeout, so MT lines show up to about 1 s late (COMPONENTS.md §1).
    """

    def __init__(
        self,
        root: Path,
        mo_url: str,
        *,
        username: str = "hazmon",
        password: str = "hazmon-pw",
        sender: str = "10690000",
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.admin_port, self.smsbox_port = free_port(), free_port()
        self.smsc_port, self.sendsms_port = free_port(), free_port()
        self.username, self.password, self.sender = username, password, sender
        self.mo_url = mo_url
        self.config = self.root / "kannel.conf"
        self.config.write_text(self._config_text())
        self.bearerbox: subprocess.Popen | None = None
        self.smsbox: subprocess.Popen | None = None
        self.fakesmsc: subprocess.Popen | None = None
        self.mt: queue.Queue[FakeSmscMessage] = queue.Queue()
        self._mo_sent = 0  # "fakesmsc: sent message N" lines seen
        self._mo_cond = threading.Condition()
        self._logs: list = []

    def _config_text(self) -> str:
        r = self.root
        # MO: one catch-all service; %a = whole text, %p = sender, %P = receiver, %t = SMSC time.
        # mo-recode turns UCS-2 MO into UTF-8 before get-url (COMPONENTS.md §1).
        sep = "&" if "?" in self.mo_url else "?"
        get_url = f"{self.mo_url}{sep}from=%p&to=%P&text=%a&coding=%c&charset=%C&smsc=%i&ts=%t"
        return f"""\
group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = adminpw
status-password = statuspw
admin-allow-ip = "127.0.0.1"
smsbox-port = {self.smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-file = "{r}/bearerbox.log"
log-level = 0
access-log = "{r}/access.log"
dlr-storage = internal
store-type = file
store-location = "{r}/kannel.store"

group = smsc
smsc = fake
smsc-id = FAKE
our-host = 127.0.0.1
port = {self.smsc_port}
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.smsbox_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
global-sender = {self.sender}
log-file = "{r}/smsbox.log"
log-level = 0
access-log = "{r}/smsbox-access.log"
mo-recode = true
# a DLR or MO callback that fails (hazmon restarting) is retried, every 2 s for a minute
http-request-retry = 30
http-queue-delay = 2

group = sendsms-user
username = {self.username}
password = {self.password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
get-url = "{get_url}"
max-messages = 0
catch-all = true
"""

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def _popen(self, name: str, cmd: list[str], **kw) -> subprocess.Popen:
        log = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        kw.setdefault("stdout", log)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(cmd, start_new_session=True, **kw)

    def start(self) -> None:
        """Start bearerbox, then fakesmsc and smsbox once bearerbox's ports accept."""
        t0 = time.monotonic()
        try:
            self._start_bearerbox()
            self.start_fakesmsc()
            self.start_smsbox()
            self._wait_smsc_online()
        except Exception:
            self.kill()
            raise
        logger.info("kannel ready in %.2f s (sendsms port %s)", time.monotonic() - t0, self.sendsms_port)

    def _start_bearerbox(self, attempts: int = 3) -> None:
        """bearerbox on its ports; if it exits before they open (a port picked free was taken meanwhile
        by a parallel test: free_port() can only promise the past), again on fresh ports. The sendsms
        port is smsbox's and already given to clients, so it stays."""
        for attempt in range(attempts):
            if attempt:
                self.admin_port, self.smsbox_port, self.smsc_port = free_port(), free_port(), free_port()
                self.config.write_text(self._config_text())
            self.bearerbox = self._popen("bearerbox", [BEARERBOX_BIN, "-v", "1", str(self.config)])
            try:
                for port in (self.admin_port, self.smsbox_port, self.smsc_port):
                    wait_port(port, proc=self.bearerbox)
                return
            except ServerError:
                if self.bearerbox.poll() is None or attempt == attempts - 1:
                    raise
                logger.warning("bearerbox exited before its ports opened; again on fresh ports")

    def start_fakesmsc(self) -> None:
        self.fakesmsc = subprocess.Popen(
            [FAKESMSC_BIN, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-v", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(
            target=self._read_fakesmsc, args=(self.fakesmsc,), daemon=True, name="fakesmsc-reader"
        ).start()

    def start_smsbox(self) -> None:
        self.smsbox = self._popen("smsbox", [SMSBOX_BIN, "-v", "1", str(self.config)])
        wait_port(self.sendsms_port, proc=self.smsbox)

    def stop_smsbox(self) -> None:
        _stop(self.smsbox, 5)

    def _read_fakesmsc(self, proc: subprocess.Popen) -> None:
        log = open(self.root / "fakesmsc.out", "ab")  # noqa: SIM115 - closed at the end of this thread
        with log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace")
                m = _GOT.search(line)
                if m:
                    self.mt.put(FakeSmscMessage.parse(m.group(1)))
                elif "fakesmsc: sent message" in line:
                    with self._mo_cond:
                        self._mo_sent += 1
                        self._mo_cond.notify_all()

    def _wait_smsc_online(self, timeout_s: float = 10.0) -> None:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password=statuspw"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                body = httpx.get(url, timeout=1).text
                if "(online" in body:  # "FAKE[FAKE] FAKE:<port> (online ...)": fakesmsc is connected
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise ServerError("kannel: the fake SMSC did not come online")

    def send_mo(self, sender: str, text: str, receiver: str | None = None, timeout_s: float = 5.0) -> None:
        """A phone sends `text` to us: written to fakesmsc's stdin (UCS-2 if it is not ASCII).

        Returns once fakesmsc has sent it to bearerbox. Pitfall: fakesmsc reads stdin with stdio
        after a select() on the fd, so a second line that arrives in the same read stays in the
        stdio buffer until more input comes; lines must go one at a time.
        """
        receiver = receiver or self.sender
        if text.isascii():
            line = f"{sender} {receiver} text {text}"
        else:
            line = f"{sender} {receiver} ucs2 {urllib.parse.quote(text.encode('utf-16-be'), safe='')}"
        assert self.fakesmsc is not None and self.fakesmsc.stdin is not None
        with self._mo_cond:
            before = self._mo_sent
            self.fakesmsc.stdin.write(line.encode() + b"\n")
            self.fakesmsc.stdin.flush()
            if not self._mo_cond.wait_for(lambda: self._mo_sent > before, timeout_s):
                raise ServerError(f"fakesmsc did not send the MO within {timeout_s} s")

    def stop(self) -> None:
        """SIGTERM smsbox, fakesmsc, bearerbox (SIGKILL after a few seconds)."""
        _stop(self.smsbox, 5)
        if self.fakesmsc is not None and self.fakesmsc.stdin:
            with contextlib.suppress(OSError):
                self.fakesmsc.stdin.close()
        _stop(self.fakesmsc, 3)
        _stop(self.bearerbox, 5)
        self._close_logs()

    def kill(self) -> None:
        for p in (self.smsbox, self.fakesmsc, self.bearerbox):
            _kill(p)
        self._close_logs()

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class SmppSimulator:
    """The smpp34 SMSC simulator (tests/support/smsc_sim.py) as a child process on a free loopback port.

    It prints one JSON object per line on stdout (bound, submit, unbound, mo_sent); `events`
    collects them. `send_mo` asks it to deliver_sm an MO to every bound ESME.
    """

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.events: queue.Queue[dict] = queue.Queue()
        self._log = None

    def start(self) -> None:
        self._log = open(self.root / "smsc_sim.err", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.smsc_sim", "--port", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],  # the repository root, where `tests` is a package
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True, name="smsc-sim-reader").start()
        try:
            wait_port(self.port, proc=self.proc, timeout_s=15)
        except Exception:
            self.kill()
            raise

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            try:
                self.events.put(json.loads(raw))
            except ValueError:
                logger.warning("smsc_sim: not JSON: %r", raw[:200])

    def next_event(self, kind: str, timeout_s: float = 10.0) -> dict:
        """The next event of that kind (others before it are dropped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} event from the SMSC simulator in {timeout_s} s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("event") == kind:
                return ev

    def send_mo(self, sender: str, receiver: str, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        cmd = {"cmd": "mo", "from": sender, "to": receiver, "text": text}
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.proc.stdin.flush()

    def unbind_all(self) -> None:
        """The SMSC ends every session with an unbind."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b'{"cmd": "unbind"}\n')
        self.proc.stdin.flush()

    def stop(self) -> None:
        _stop(self.proc, 3)
        if self._log:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        _kill(self.proc)
        if self._log:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
