"""Debian's Firefox ESR, headless, driven through Marionette: the remote protocol built into
Firefox (geckodriver, which selenium needs, is not packaged by Debian). A message is its JSON's
length in ASCII, a colon, then the JSON: [0, id, command, params] asked, [1, id, error, result]
answered. Only what the console test uses.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # The W3C WebDriver element key.


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Firefox:
    def __init__(self, binary="/usr/bin/firefox-esr", width=1280, height=800, timeout=60):
        self.profile = tempfile.mkdtemp(prefix="firefox-")
        port = _free_port()
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            f.write('user_pref("marionette.port", %d);\n' % port)
            f.write('user_pref("browser.shell.checkDefaultBrowser", false);\n')
            f.write('user_pref("datareporting.policy.dataSubmissionEnabled", false);\n')
        env = dict(os.environ, MOZ_HEADLESS_WIDTH=str(width), MOZ_HEADLESS_HEIGHT=str(height))
        env.pop("LD_PRELOAD", None)  # A sanitized test run's runtime is for our code, not Firefox.
        self.proc = subprocess.Popen(
            [binary, "--headless", "--marionette", "--no-remote", "--profile", self.profile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.quit()
                    raise RuntimeError("Firefox's Marionette did not listen on port %d" % port)
                time.sleep(0.2)
        self.buffer = b""
        self.last_id = 0
        hello = self._read()
        if hello.get("marionetteProtocol") != 3:
            raise RuntimeError("unexpected Marionette greeting %r" % hello)
        self.call("WebDriver:NewSession", {"capabilities": {"pageLoadStrategy": "normal"}})
        self.call("WebDriver:SetWindowRect", {"width": width, "height": height})

    def _read(self):
        while b":" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("Firefox closed the Marionette connection")
            self.buffer += chunk
        length, rest = self.buffer.split(b":", 1)
        length = int(length)
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("Firefox closed the Marionette connection")
            rest += chunk
        self.buffer = rest[length:]
        return json.loads(rest[:length])

    def call(self, command, params=None):
        self.last_id += 1
        data = json.dumps([0, self.last_id, command, params or {}]).encode()
        self.sock.sendall(b"%d:%s" % (len(data), data))
        while True:
            message = self._read()
            if message[0] == 1 and message[1] == self.last_id:
                if message[2]:
                    raise RuntimeError("%s: %s" % (command, message[2].get("message", message[2])))
                result = message[3]
                return result.get("value", result) if isinstance(result, dict) else result

    def get(self, url):
        self.call("WebDriver:Navigate", {"url": url})

    def script(self, source, *args):
        return self.call("WebDriver:ExecuteScript", {"script": source, "args": list(args)})

    def find_all(self, css):
        found = self.call("WebDriver:FindElements", {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def click(self, element):
        self.call("WebDriver:ElementClick", {"id": element})

    def send_keys(self, element, text):
        self.call("WebDriver:ElementSendKeys", {"id": element, "text": text})

    def wait(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("Firefox: timed out waiting for " + what)
            time.sleep(0.1)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("WebDriver:TakeScreenshot", {"full": False})))

    def quit(self):
        if getattr(self, "sock", None):
            try:
                self.call("Marionette:Quit", {"flags": ["eForceQuit"]})
            except (OSError, RuntimeError):
                pass
            self.sock.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
