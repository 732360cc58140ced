#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""cdp.py: drive a headless Chromium through the DevTools protocol, for the
dashboard tests (t/0090-dashboard.bats).  Python's standard library only: a
minimal websocket client over a socket, http.client for /json.

    cdp.py [-t SECONDS] URL STEP...

starts Chromium on URL (its own profile in a temporary directory, debugging
on 127.0.0.1 only), waits until the page has loaded, then runs each STEP in
order:

    eval EXPR           print EXPR's value (awaited if a promise) as JSON
    wait SECONDS EXPR   poll EXPR every 50 ms until it is true; fail after SECONDS
    shell COMMAND       run COMMAND with /bin/sh; fail if it fails
    shot FILE           a PNG of the whole page as it is now into FILE

Exit 0 when every step passed, 1 (and a line on stderr) at the first that did
not, 2 when the browser could not be driven.  Every wait is bounded (-t: the
whole run, 60 s by default).
"""
import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the background-networking flags keep
# it from calling out (the network here is closed, and so should a test be).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--window-size=1280,800", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0"]


class Fail(Exception):
    pass


class WebSocket:
    def __init__(self, host, port, path, deadline):
        self.deadline = deadline
        self.s = socket.create_connection((host, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._recv(1)
            head += chunk
            if len(head) > 65536:
                raise Fail("websocket: no end of the handshake")
        self.buf = b""
        if not head.startswith(b"HTTP/1.1 101"):
            raise Fail("websocket: handshake refused: %r" % head[:80])

    def _recv(self, n):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Fail("timed out")
        self.s.settimeout(min(left, 5))
        try:
            d = self.s.recv(n)
        except socket.timeout:
            return b""
        if not d:
            raise Fail("websocket: the browser closed the connection")
        return d

    def _read(self, n):
        while len(self.buf) < n:
            self.buf += self._recv(65536)
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def send(self, text, opcode=1):
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """One whole text message."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 9:
                self.send(data, 10)
                continue
            if op == 8:
                raise Fail("websocket: closed by the browser")
            if op in (0, 1, 2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode("utf-8", "replace")


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                if "error" in m:
                    raise Fail("%s: %s" % (method, m["error"].get("message")))
                return m["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise Fail("eval %s: %s" % (expr, d.get("exception", {}).get("description", d.get("text"))))
        return r["result"].get("value")


def start(url, deadline):
    profile = tempfile.mkdtemp(prefix="cdp-")
    proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + profile, url],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    port = None
    while port is None:
        if proc.poll() is not None:
            raise Fail("chromium exited with %d" % proc.returncode)
        if time.monotonic() > deadline:
            raise Fail("chromium did not open its debugging port")
        try:
            with open(port_file) as f:
                port = int(f.readline())
        except (OSError, ValueError):
            time.sleep(0.05)
    target = None
    while target is None:
        if time.monotonic() > deadline:
            raise Fail("chromium shows no page")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/json/list")
        pages = [t for t in json.loads(c.getresponse().read()) if t.get("type") == "page"]
        c.close()
        if pages:
            target = pages[0]
        else:
            time.sleep(0.05)
    path = target["webSocketDebuggerUrl"].split(str(port), 1)[1]
    return proc, profile, Page(WebSocket("127.0.0.1", port, path, deadline))


def wait(page, seconds, expr, deadline):
    end = min(deadline, time.monotonic() + seconds)
    last = None
    while True:
        try:
            if page.eval(expr):
                return
            last = None
        except Fail as e:
            last = str(e)
        if time.monotonic() > end:
            raise Fail("wait %ss: never true: %s%s" % (seconds, expr, " (%s)" % last if last else ""))
        time.sleep(0.05)


def main(argv):
    limit = 60.0
    if len(argv) > 2 and argv[1] == "-t":
        limit = float(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 2:
        sys.stderr.write("usage: cdp.py [-t seconds] url step...\n")
        return 2
    deadline = time.monotonic() + limit
    proc = profile = None
    try:
        try:
            proc, profile, page = start(argv[1], deadline)
            wait(page, limit, "document.readyState === 'complete' && location.href !== 'about:blank'",
                 deadline)
        except (Fail, OSError) as e:
            sys.stderr.write("cdp.py: %s\n" % e)
            return 2
        for step in argv[2:]:
            verb, _, rest = step.partition(" ")
            try:
                if verb == "eval":
                    print(json.dumps(page.eval(rest)))
                elif verb == "wait":
                    secs, _, expr = rest.partition(" ")
                    wait(page, float(secs), expr, deadline)
                elif verb == "shell":
                    if subprocess.call(["/bin/sh", "-c", rest], stdin=subprocess.DEVNULL,
                                       timeout=max(1, deadline - time.monotonic())) != 0:
                        raise Fail("shell: failed: %s" % rest)
                elif verb == "shot":
                    # the whole page, 1280 px wide, not only what fits the window
                    size = page.call("Page.getLayoutMetrics")["cssContentSize"]
                    clip = {"x": 0, "y": 0, "width": 1280, "height": min(size["height"], 4000),
                            "scale": 1}
                    data = page.call("Page.captureScreenshot", format="png", clip=clip,
                                     captureBeyondViewport=True)["data"]
                    with open(rest, "wb") as f:
                        f.write(base64.b64decode(data))
                else:
                    raise Fail("unknown step '%s'" % verb)
                sys.stdout.flush()
            except (Fail, OSError, subprocess.TimeoutExpired) as e:
                sys.stderr.write("cdp.py: %s\n" % e)
                return 1
        return 0
    finally:
        if proc:
            proc.kill()
            proc.wait()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
