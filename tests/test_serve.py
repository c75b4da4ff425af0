"""`tuco serve`: the real server (a subprocess on a free 127.0.0.1 port, the shipped demo pair in float32)
driven by the official `openai` client, raw HTTP and lm-evaluation-harness's API models. Responses equal
`tuco generate` / `tuco score` computed here independently; concurrent requests equal their solo runs.
One server for the module; the SIGTERM test runs last and stops it."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import tuco
from conftest import ENV
from tuco.measures.generation import generate_ids

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

KEY = "test-key"
FLAG = 0.4
CHAT = [{"role": "user", "content": "How do I bake bread?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The running server: (base url, process, its stderr log path)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    args = ["--pair", "demo", "--dtype", "float32", "--device", "cpu", "--threads", "1", "--port", str(port), "--api-key", KEY]
    args += ["--max-batch", "16", "--max-queue", "16", "--max-tokens", "64", "--flag-below", str(FLAG)]
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tuco", "serve", *args], stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("tuco serve exited: " + log.read_text()[-2000:])
            time.sleep(0.2)
    yield url, proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def pair():
    """The demo pair in this process, for the independent reference computations (one CPU thread, as the server)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tuco.load_pair(*map(str, tuco.models.shipped.demo_pair_dirs()), dtype="float32", device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def post(url, path, body, key=KEY, raw=None):
    """(status, headers, parsed JSON body) of a POST (``raw``: bytes sent as they are)."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST", headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, {k.lower(): v for k, v in res.headers.items()}, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def get(url, path, key=KEY):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def tuco_of(choice):
    return choice.model_extra["tuco"]


# ---- results equal the library's ----


def test_chat_equals_tuco_generate_and_score(server, client, pair):
    res = client.chat.completions.create(
        model="tuco", messages=CHAT, max_tokens=12, temperature=0, extra_body={"alpha": 0.5, "tuco_tokens": True}
    )
    (choice,) = res.choices
    (g,) = tuco.generate(pair, [CHAT], alpha=0.5, max_new_tokens=12)
    (s,) = tuco.score(pair, [CHAT], alpha=0.5)
    t = tuco_of(choice)
    assert choice.message.content == g.text and res.usage.completion_tokens == len(g.token_ids)
    assert t["alpha"] == "0.5" and t["prompt"] == pytest.approx(s.tuco, abs=1e-6)
    assert t["tokens"] == pytest.approx(g.token_tuco, abs=1e-5) and t["response_mean"] == pytest.approx(g.mean_tuco, abs=1e-5)
    assert choice.finish_reason == ("stop" if g.finished else "length")
    assert choice.model_extra["tuco_flag"] == (t["prompt"] < FLAG)
    # default alpha 1: the fine-tuned model itself; no per-token list unless asked
    plain = client.chat.completions.create(model="tuco", messages=CHAT, max_tokens=12, temperature=0).choices[0]
    (g1,) = tuco.generate(pair, [CHAT], max_new_tokens=12)
    assert plain.message.content == g1.text and "tokens" not in tuco_of(plain)
    assert tuco_of(plain)["prompt"] == pytest.approx(tuco.score(pair, [CHAT])[0].tuco, abs=1e-6)


def test_streaming_chunks_carry_each_tokens_tuco(client):
    kw = dict(model="tuco", messages=CHAT, max_tokens=10, temperature=0, extra_body={"alpha": 1.25, "tuco_tokens": True})
    whole = client.chat.completions.create(**kw).choices[0]
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    per_token = [tuco_of(c.choices[0])["token"] for c in chunks if c.choices and "token" in tuco_of(c.choices[0])]
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0].choices[0]
    assert text == whole.message.content and last.finish_reason == whole.finish_reason
    assert per_token == pytest.approx(tuco_of(whole)["tokens"], abs=1e-6) == tuco_of(last)["tokens"]
    assert tuco_of(chunks[0].choices[0])["prompt"] == pytest.approx(tuco_of(whole)["prompt"])
    assert chunks[-1].usage.completion_tokens == len(per_token)


def test_completions_logprobs_and_echo_are_the_models_own(server, client, pair):
    prompt = "The sea is"
    res = client.completions.create(model="tuco", prompt=prompt, max_tokens=3, temperature=0, logprobs=2, echo=True)
    choice, lp = res.choices[0], res.choices[0].logprobs
    (g,) = tuco.generate(pair, [prompt], chat=False, max_new_tokens=3)  # raw text, the tokenizer's default special tokens
    ids = pair.tokenizer(prompt)["input_ids"]
    full = ids + g.token_ids
    assert choice.text == prompt + g.text and len(lp.tokens) == len(full) and lp.token_logprobs[0] is None
    with torch.no_grad():  # independent: one plain forward pass of the tuned model
        logp = torch.log_softmax(pair.tuned(input_ids=torch.tensor([full])).logits[0].float(), -1)
    want = [float(logp[j, full[j + 1]]) for j in range(len(full) - 1)]
    assert lp.token_logprobs[1:] == pytest.approx(want, abs=1e-4)
    assert all(len(top) == 2 and max(top.values()) >= v - 1e-6 for top, v in zip(lp.top_logprobs[1:], lp.token_logprobs[1:]))
    # token ids as the prompt, max_tokens 0: scoring only (what lm-eval's loglikelihood needs)
    status, _, body = post(server[0], "/v1/completions", {"prompt": [ids], "max_tokens": 0, "echo": True, "logprobs": 1})
    assert status == 200 and body["choices"][0]["logprobs"]["token_logprobs"][1:] == pytest.approx(want[: len(ids) - 1], abs=1e-4)
    assert body["usage"]["completion_tokens"] == 0


def test_lm_eval_api_models_work_unchanged(server, pair, monkeypatch):
    from lm_eval.api.instance import Instance
    from lm_eval.models.api_models import JsonChatStr
    from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    lm = LocalCompletionsAPI(base_url=server[0] + "/v1/completions", model="tuco", max_gen_toks=8, auth_token=KEY)
    assert lm.tokenizer_backend == "remote"  # found our /tokenizer_info and /tokenize
    gen = Instance("generate_until", None, ("The sea is", {"until": ["\n\n"], "max_gen_toks": 8}), 0)
    ll = Instance("loglikelihood", None, ("The sea is", " calm"), 0)
    (text,) = lm.generate_until([gen], disable_tqdm=True)
    ((logprob, greedy),) = lm.loglikelihood([ll], disable_tqdm=True)
    encode = lambda t: pair.tokenizer(t, add_special_tokens=False)["input_ids"]  # lm-eval sends token ids, no BOS
    (g,) = generate_ids(pair, [encode("The sea is")], max_new_tokens=8)
    assert text == pair.tokenizer.decode(g.token_ids, skip_special_tokens=True).split("\n\n")[0]
    ctx = encode("The sea is")
    cont = encode("The sea is calm")[len(ctx) :]
    with torch.no_grad():
        logp = torch.log_softmax(pair.tuned(input_ids=torch.tensor([ctx + cont])).logits[0].float(), -1)
    want = sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
    assert logprob == pytest.approx(want, abs=1e-4) and isinstance(greedy, bool)
    chat = LocalChatCompletion(base_url=server[0] + "/v1/chat/completions", model="tuco", max_gen_toks=8)
    (reply,) = chat.generate_until([Instance("generate_until", None, (JsonChatStr(json.dumps(CHAT)), {"max_gen_toks": 8}), 0)])
    assert reply == tuco.generate(pair, [CHAT], max_new_tokens=8)[0].text


# ---- many requests at once ----


def _ask(client, i):
    """Request i of a mixed set: alphas, lengths, greedy and seeded sampling, chat and completions."""
    alpha = [0.0, 0.5, 1.0, 1.25][i % 4]
    n = 4 + (i * 5) % 13
    if i % 3 == 2:
        r = client.completions.create(
            model="tuco",
            prompt="Once upon a time " * (1 + i % 3),
            max_tokens=n,
            temperature=0.8,
            seed=i,
            extra_body={"alpha": alpha, "tuco_tokens": True},
        )
        return r.choices[0].text, tuco_of(r.choices[0])
    messages = [{"role": "user", "content": "Tell me about " + "the sea and the sky " * (i % 5)}]
    r = client.chat.completions.create(
        model="tuco", messages=messages, max_tokens=n, temperature=0, extra_body={"alpha": alpha, "tuco_tokens": True}
    )
    return r.choices[0].message.content, tuco_of(r.choices[0])


def _batch_rows(url):
    """(decode passes, rows in them) from /metrics."""
    text = get(url, "/metrics")[1]
    value = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("tuco_batch_rows_")}
    return value.get('tuco_batch_rows_count{kind="decode"}', 0.0), value.get('tuco_batch_rows_sum{kind="decode"}', 0.0)


def test_sixteen_concurrent_requests_each_equal_their_solo_run(server, client):
    passes0, rows0 = _batch_rows(server[0])
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda i: _ask(client, i), range(16)))
    passes1, rows1 = _batch_rows(server[0])
    alone = [_ask(client, i) for i in range(16)]
    for (text, t), (text1, t1) in zip(together, alone):
        assert text == text1
        assert t["prompt"] == pytest.approx(t1["prompt"], abs=1e-5)
        assert t["tokens"] == pytest.approx(t1["tokens"], abs=1e-5)
    assert (rows1 - rows0) / (passes1 - passes0) > 2  # they really shared forward passes


def test_a_full_queue_answers_429_with_retry_after(server):
    body = {"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0}
    with ThreadPoolExecutor(48) as pool:  # 16 in the batch and 16 queued at most
        results = list(pool.map(lambda _: post(server[0], "/v1/completions", body), range(48)))
    busy = [(h, b) for status, h, b in results if status == 429]
    assert busy and all(h.get("retry-after") == "1" and b["error"]["code"] == "queue_full" for h, b in busy)
    assert {status for status, _, _ in results} == {200, 429}


def test_a_client_that_disconnects_frees_its_slot(server):
    url, _, log = server
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    body = {"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0, "stream": True, "alpha": 0.75}
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    assert conn.getresponse().readline().startswith(b"data: ")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 10
    while json.loads(get(url, "/health")[1])["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(get(url, "/health")[1])["running"] == 0
    deadline = time.monotonic() + 5
    while "alpha=0.75" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [ln for ln in log.read_text().splitlines() if "alpha=0.75" in ln]
    assert " 499 " in line and "finish=cancelled" in line and "tokens=64" not in line


# ---- refusals: OpenAI error objects, 4xx, never 500 ----


@pytest.mark.parametrize(
    "path, body, raw, status, needle",
    [
        ("/v1/chat/completions", None, b'{"messages": [', 400, "not valid JSON"),
        ("/v1/chat/completions", None, b'{"messages": [], "alpha": NaN}', 400, "not valid JSON"),
        ("/v1/chat/completions", [1, 2], None, 400, "must be a JSON object"),
        ("/v1/chat/completions", {"model": "tuco"}, None, 400, "'messages'"),
        ("/v1/chat/completions", {"messages": CHAT, "alpha": "1:x"}, None, 400, "is not a number"),
        ("/v1/chat/completions", {"messages": CHAT, "alpha": -0.5}, None, 400, "alpha must be a finite number >= 0"),
        ("/v1/chat/completions", {"messages": CHAT, "alpha": "1:1"}, None, 400, "6 layers"),
        ("/v1/chat/completions", {"messages": CHAT, "alpha": True}, None, 400, "'alpha' must be a number"),
        ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 65}, None, 400, "--max-tokens"),
        ("/v1/chat/completions", {"messages": CHAT, "n": 17}, None, 400, "'n'"),
        ("/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, None, 400, "'temperature' must be a number"),
        ("/v1/chat/completions", {"messages": CHAT, "presence_penalty": 1}, None, 400, "not supported"),
        ("/v1/completions", {"prompt": "word " * 1100, "max_tokens": 4}, None, 400, "context"),
        ("/v1/completions", {"prompt": [[1, 999999]]}, None, 400, "outside the vocabulary"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 0}, None, 400, "'max_tokens' 0"),
        ("/v1/nothing", {}, None, 404, "no route"),
    ],
)
def test_bad_requests_get_openai_errors(server, path, body, raw, status, needle):
    got, _, err = post(server[0], path, body, raw=raw)
    assert got == status and needle in err["error"]["message"], err
    assert set(err["error"]) == {"message", "type", "param", "code"}


def test_a_body_over_the_size_limit_gets_413(server):
    conn = http.client.HTTPConnection(server[0].removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/v1/completions")
    for k, v in (("Content-Type", "application/json"), ("Authorization", f"Bearer {KEY}"), ("Content-Length", str(2 << 20))):
        conn.putheader(k, v)
    conn.endheaders(b'{"prompt": "')  # refused from its declared length, before the body is read
    res = conn.getresponse()
    assert res.status == 413 and json.loads(res.read())["error"]["code"] == "request_too_large"
    conn.close()


def test_api_key_is_required(server, client):
    assert [m.id for m in client.models.list().data] == ["tuco"]
    for key in (None, "wrong"):
        status, _, err = post(server[0], "/v1/chat/completions", {"messages": CHAT}, key=key)
        assert status == 401 and err["error"]["code"] == "invalid_api_key"
        assert get(server[0], "/v1/models", key=key or "")[0] == 401
    assert get(server[0], "/health", key="")[0] == 200


def test_metrics_and_access_log(server):
    url, _, log = server
    status, text = get(url, "/metrics", key="")
    assert status == 200
    for name in (
        "tuco_requests_total",
        "tuco_request_seconds_bucket",
        'tuco_batch_rows_bucket{kind="decode"',
        "tuco_queue_depth",
        "tuco_running_rows",
    ):
        assert name in text
    assert 'tuco_prompt_tuco_bucket{alpha="0.5"' in text and 'status="429"' in text and 'status="400"' in text
    lines = log.read_text().splitlines()
    ok = [ln for ln in lines if '"POST /v1/chat/completions" 200' in ln]
    assert ok and all("prompt_tuco=" in ln and "response_tuco=" in ln for ln in ok)


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom tuco.cli.main import main\n"
        "for argv in (['serve', '--help'], ['calibrate', '--help']):\n"
        "    try: main(argv)\n    except SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules or 'transformers' in sys.modules or 'fastapi' in sys.modules else 'LIGHT')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert "--flag-below" in res.stdout and "--fpr" in res.stdout and res.stdout.strip().endswith("LIGHT")


# ---- last: SIGTERM drains the requests in flight, then the server exits ----


def test_sigterm_drains_in_flight_requests(server, client):
    url, proc, _ = server
    first = threading.Event()
    got: dict = {}

    def stream():
        chunks = []
        for c in client.chat.completions.create(
            model="tuco", messages=CHAT, max_tokens=40, temperature=0, stream=True, extra_body={"alpha": 1.1}
        ):
            chunks.append(c)
            first.set()
        got["chunks"] = chunks

    t = threading.Thread(target=stream)
    t.start()
    assert first.wait(30)
    proc.send_signal(signal.SIGTERM)
    t.join(60)
    finals = [c.choices[0] for c in got["chunks"] if c.choices and c.choices[0].finish_reason]
    assert finals and finals[0].finish_reason in ("stop", "length")  # the stream ran to its end
    assert proc.wait(30) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=2)
