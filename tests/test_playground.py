"""The playground of `tuco serve`, end to end in a real browser: headless Chromium (the system's, as the
report's test uses) driven over the DevTools protocol on a pipe (``Browser`` below: no driver binary, no
package, no network) against `tuco serve --pair demo --port 0 --api-key ... --runs ...`.

One walk through the page: the key is asked for and kept in the tab only; a prompt containing markup is
shown as text; columns at alpha 0 and 1 stream, and the tokens read from the page (text, TuCo, colour)
equal the API's for the same request and the report's colour scale; keyboard focus moves over tokens and
shows their per-layer norms; Stop ends the streams and the server stops decoding them; a pasted response is
scored like the API's /v1/tuco/score; "save as run" writes a run that ``tuco.load_run`` opens; the layout
holds at 1280 px and on a narrow window."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import tuco
from tuco import palette

pytest.importorskip("fastapi")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "playground-key"
XSS = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b> How do I bake bread?'
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
]


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands
    in on fd 3, answers out on fd 4, each message NUL-terminated JSON)."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="tuco-chromium-")
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()

        args = [CHROMIUM, *FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "--remote-debugging-pipe"]
        for fd in (commands_r, answers_w):
            os.set_inheritable(fd, True)
        null = os.POSIX_SPAWN_OPEN
        self.pid = os.posix_spawn(  # the DevTools pipe on fds 3 and 4 of the browser
            CHROMIUM,
            [*args, "about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, commands_r, 3),
                (os.POSIX_SPAWN_DUP2, answers_w, 4),
                (null, 1, os.devnull, os.O_WRONLY, 0),
                (null, 2, os.devnull, os.O_WRONLY, 0),
            ],
        )
        os.close(commands_r)
        os.close(answers_w)
        self._id, self._buffer, self._answered = 0, b"", {}
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for method in ("Page.enable", "Runtime.enable"):
            self.page(method)
        self.resize(width, height)

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: object) -> dict:
        self._id += 1
        message: dict = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self._id not in self._answered:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError(method)
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                got = json.loads(raw)
                if "id" in got:
                    self._answered[got["id"]] = got
        answer = self._answered.pop(self._id)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def page(self, method: str, **params: object) -> dict:
        """A command to the page's session."""
        return self.send(method, session=self.session, **params)

    def js(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (promises awaited)."""
        res = self.page("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:100]}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait(self, expression: str, timeout: float = 30) -> object:
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(expression)
            time.sleep(0.03)
        return value

    def key(self, key: str, code: int, ctrl: bool = False) -> None:
        """A key pressed and released (a real input event, as a keyboard sends it)."""
        base = {"key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": 2 if ctrl else 0}
        self.page("Input.dispatchKeyEvent", type="rawKeyDown", **base)
        if key == "Enter" and not ctrl:
            self.page("Input.dispatchKeyEvent", type="char", text="\r", **base)
        self.page("Input.dispatchKeyEvent", type="keyUp", **base)

    def type(self, selector: str, text: str) -> None:
        """Focus a field, empty it, and type ``text`` into it."""
        self.js(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.page("Input.insertText", text=text)

    def resize(self, width: int, height: int) -> None:
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        os.close(self._commands)
        os.close(self._answers)
        shutil.rmtree(self.profile, ignore_errors=True)


def start_server(runs: Path, log: Path, *extra: str) -> tuple[str, subprocess.Popen]:
    """`tuco serve --pair demo --port 0 ...` in a subprocess; (its URL, the process) once it listens."""
    args = ["--pair", "demo", "--dtype", "float32", "--device", "cpu", "--threads", "1", "--port", "0"]
    args += ["--max-tokens", "512", "--runs", str(runs), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tuco", "serve", *args], stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 120
    while not (found := re.search(r"the playground at (http://\S+?)/[,\s]", log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("tuco serve did not start: " + log.read_text()[-2000:])
        time.sleep(0.1)
    return found.group(1), proc


def api(url: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(), method="POST" if body else "GET")
    req.add_header("Authorization", f"Bearer {KEY}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read())


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


COLUMNS = """[...document.querySelectorAll('.column')].map(c => ({
    alpha: c.querySelector('.alpha').value, state: c.dataset.state || null, id: c.dataset.responseId || null,
    first: c.dataset.firstTokenMs === undefined ? null : Number(c.dataset.firstTokenMs),
    prompt: c.querySelector('.prompt-tuco').textContent, reading: c.querySelector('.reading').textContent,
    flag: c.querySelector('.flag').hidden ? null : c.querySelector('.flag').textContent,
    tokens: [...c.querySelectorAll('.tok')].map(s => [s.textContent, Number(s.dataset.tuco), getComputedStyle(s).backgroundColor])}))"""


def run_and_wait(b: Browser) -> list[dict]:
    b.js("document.getElementById('prompt').focus()")
    b.key("Enter", 13, ctrl=True)  # Ctrl+Enter runs
    b.wait("document.body.dataset.running === '1'", timeout=10)
    b.wait("document.body.dataset.running === '0'", timeout=60)
    return b.js(COLUMNS)  # type: ignore[return-value]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (.ci/run installs it)")
def test_playground_in_headless_chromium(tmp_path):
    assert CHROMIUM, "chromium must be installed in CI"
    url, proc = start_server(tmp_path / "runs", tmp_path / "serve.log", "--api-key", KEY, "--flag-below", "0.45")
    b = Browser()
    try:
        # behind --api-key the page loads and asks for the key; no API route answers without it
        for path in ("/v1/tuco/info", "/v1/models"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url + path, timeout=30)
            assert err.value.code == 401
        b.js(f"location.href = {json.dumps(url + '/')}")
        b.wait("document.getElementById('key-form') && !document.getElementById('key-form').hidden")
        b.type("#key", KEY)
        b.key("Enter", 13)
        b.wait("document.body.dataset.ready === '1'")  # the key is kept in this tab only
        assert b.js("sessionStorage.getItem('tuco-playground-key')") == KEY
        assert b.js("localStorage.length") == 0 and b.js("document.cookie") == ""
        assert b.js("document.getElementById('model-line').textContent").startswith("model tuco: 6 layers")

        # two columns, alpha 0 and 1; a prompt with markup, shown as text
        b.js("document.querySelectorAll('.column .remove')[2].click()")
        assert [c["alpha"] for c in b.js(COLUMNS)] == ["0", "1"]
        b.type("#prompt", XSS)
        b.type("#max-tokens", "12")
        cols = run_and_wait(b)
        assert b.js("document.body.dataset.pwned") is None and b.js("document.querySelectorAll('img, b').length") == 0
        assert b.js("document.getElementById('ran').textContent") == "Prompt: " + XSS

        # the coloured tokens are the API's for the same request, on the report's colour scale
        chat = [{"role": "user", "content": XSS}]
        for col in cols:
            assert col["state"] in ("stop", "length") and col["id"].startswith("chatcmpl-")
            want = api(
                url,
                "/v1/chat/completions",
                {"messages": chat, "max_tokens": 12, "temperature": 0, "alpha": col["alpha"], "tuco_detail": True},
            )
            t = want["choices"][0]["tuco"]
            assert [tok[0] for tok in col["tokens"]] == t["pieces"]
            assert "".join(tok[0] for tok in col["tokens"]) == want["choices"][0]["message"]["content"]
            assert [tok[1] for tok in col["tokens"]] == pytest.approx(t["tokens"], abs=1e-5)
            assert [tok[2] for tok in col["tokens"]] == [rgb(palette.tuco_colour(tok[1])) for tok in col["tokens"]]
            assert col["prompt"].startswith(f"Prompt TuCo {t['prompt']:.4f}")
            assert 0 <= col["first"] < 5000
        assert "switched off" in cols[0]["reading"] and "Fine-tuning wrote" in cols[1]["reading"]
        assert "calibrated threshold 0.45" in cols[1]["flag"]

        # keyboard: focus a token, arrow to the next: its TuCo and per-layer norms show
        b.js("document.querySelectorAll('.column')[1].querySelector('.tok').focus()")
        b.key("ArrowRight", 39)
        assert b.js("document.activeElement.dataset.index") == "1"
        detail = b.js("document.getElementById('detail-text').textContent")
        assert "token 2 of" in detail and f"TuCo {cols[1]['tokens'][1][1]:.4f}" in detail
        assert b.js("document.querySelectorAll('#detail-chart .layer').length") == 6
        assert b.js("document.querySelectorAll('#detail-chart .bar').length") == 12

        # layout: side by side at 1280 px, stacked and without sideways scrolling on a narrow window
        assert b.js("document.documentElement.scrollWidth") <= 1280
        tops = b.js("[...document.querySelectorAll('.column')].map(c => c.getBoundingClientRect().top)")
        assert tops[0] == tops[1]
        b.resize(400, 900)
        assert b.js("document.documentElement.scrollWidth") <= 400
        tops = b.js("[...document.querySelectorAll('.column')].map(c => c.getBoundingClientRect().top)")
        assert tops[0] < tops[1]
        b.resize(1280, 900)

        # stop mid-stream: alpha 0 (the pre-trained blocks) writes long; the server stops decoding it
        b.type("#max-tokens", "500")
        b.js("document.getElementById('prompt').focus()")
        b.key("Enter", 13, ctrl=True)
        b.wait("document.querySelectorAll('.column')[0].querySelectorAll('.tok').length >= 5", timeout=30)
        b.js("document.getElementById('stop').click()")
        b.wait("document.body.dataset.running === '0'", timeout=10)
        stopped = b.js(COLUMNS)
        assert stopped[0]["state"] == "stopped" and len(stopped[0]["tokens"]) < 500
        deadline = time.monotonic() + 2
        while api(url, "/health")["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api(url, "/health")["running"] == 0
        assert re.search(r'"POST /v1/chat/completions" 499 .*alpha=0 .*finish=cancelled', (tmp_path / "serve.log").read_text())

        # paste a response: scored teacher-forced, the same numbers as the API's /v1/tuco/score
        response = "".join(tok[0] for tok in cols[1]["tokens"])
        b.js("document.querySelector('input[name=mode][value=score]').click()")
        assert b.js("document.getElementById('response-box').hidden") is False
        b.type("#response", response)
        scored = run_and_wait(b)
        for col in scored:
            want = api(
                url,
                "/v1/tuco/score",
                {"messages": [*chat, {"role": "assistant", "content": response}], "alpha": col["alpha"], "tuco_detail": True},
            )
            assert col["state"] == "scored" and [tok[0] for tok in col["tokens"]] == want["tuco"]["pieces"]
            assert [tok[1] for tok in col["tokens"]] == pytest.approx(want["tuco"]["tokens"], abs=1e-6)
        # per token, scoring equals generation where the re-tokenised response has the generated tokens
        n = min(len(cols[1]["tokens"]), len(scored[1]["tokens"])) - 1
        assert [t[0] for t in scored[1]["tokens"][:n]] == [t[0] for t in cols[1]["tokens"][:n]]
        assert [t[1] for t in scored[1]["tokens"][:3]] == pytest.approx([t[1] for t in cols[1]["tokens"][:3]], abs=1e-5)

        # save as run: the page's rows so far, opened by tuco.load_run
        b.type("#run-name", "from-the-page")
        b.js("document.getElementById('save').click()")
        path = b.wait("document.body.dataset.saved", timeout=30)
        run = tuco.load_run(path)
        kinds = [r["kind"] for r in run.rows]
        assert kinds.count("score") == 2 and kinds.count("generation") == 4 and run.manifest["status"] == "finished"
        first = [r for r in run.rows if r["kind"] == "generation"][:2]
        assert [r["token_tuco"] for r in first] == [pytest.approx([t[1] for t in c["tokens"]], abs=1e-7) for c in cols]
        assert [r["alpha"] for r in first] == [0.0, 1.0] and first[0]["item"] == first[1]["item"]
        assert any(r.get("finish_reason") == "cancelled" for r in run.rows)

        # the page is served with a CSP that runs only its own script
        with urllib.request.urlopen(url + "/", timeout=30) as res:
            csp = res.headers["Content-Security-Policy"]
            html = res.read().decode()
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "<script>" not in html and " style=" not in html
    finally:
        b.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_page_assets_ship_without_the_network():
    """Everything the page loads is in the package and on this server: no other origin is named."""
    from tuco.serve.routes.playground import static

    for name in ("index.html", "playground.js", "playground.css"):
        text = static(name).decode()
        assert not re.search(r"https?://", text.replace("http://127.0.0.1", "")), name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "eval(" not in text
