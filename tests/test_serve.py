"""`tuco serve`: the real server (a subprocess on a free 127.0.0.1 port, the shipped demo pair in float32)
driven by the official `openai` client, raw HTTP and lm-evaluation-harness's API models. Responses equal
`tuco generate` / `tuco score` / `generate_to` computed here independently; concurrent requests equal their
solo runs; clients that hang up (streaming or not) stop their rows; the event loop stays responsive while a
1 MiB body is tokenised; cross-site requests (a non-JSON body, another Host) are refused. One server for the
module; the SIGTERM test runs last and stops it."""

from __future__ import annotations

import http.client
import json
import re
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
from tuco.measures.sampling import Sampling
from tuco.models.shipped import demo_pair_dirs

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
    args += ["--max-batch", "16", "--max-queue", "16", "--max-tokens", "512", "--flag-below", str(FLAG)]
    args += ["--runs", str(tmp_path_factory.mktemp("runs"))]
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
    yield tuco.load_pair(*map(str, demo_pair_dirs()), dtype="float32", device="cpu")
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
    (g,) = generate_ids(pair, [encode("The sea is")], sampling=Sampling(max_new_tokens=8))
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


def _metric(url, name):
    """A sample's value from /metrics (0 when absent)."""
    for line in get(url, "/metrics")[1].splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split()[0] == name:
            return float(line.split()[-1])
    return 0.0


def _decode_passes(url):
    return _metric(url, 'tuco_batch_rows_count{kind="decode"}')


def _log_line(log, needle, timeout=5):
    deadline = time.monotonic() + timeout
    while needle not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [ln for ln in log.read_text().splitlines() if needle in ln]
    return line


def test_a_non_streaming_client_that_hangs_up_stops_its_rows(server):
    """A sampled, non-streaming request: its client closes the connection while its rows decode. The server
    notices (a task polling is_disconnected beside the handler), frees the slot within 2 s and runs no
    further pass for those rows."""
    url, _, log = server
    body = {
        "messages": [{"role": "user", "content": "How do I bake bread?"}],
        "max_tokens": 500,
        "temperature": 0.1,  # sampled (each row from its own seeded generator), near-greedy: long at alpha 0
        "seed": 1,
        "n": 4,
        "alpha": "0:0:0:0:0:0",  # alpha 0 (the pre-trained blocks write long), in a form no other test uses
    }
    sock = socket.create_connection(url.removeprefix("http://").split(":"), timeout=30)
    data = json.dumps(body).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\nContent-Type: application/json\r\n"
    head += f"Authorization: Bearer {KEY}\r\nContent-Length: {len(data)}\r\n\r\n"
    sock.sendall(head.encode() + data)
    deadline = time.monotonic() + 20
    while json.loads(get(url, "/health")[1])["running"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)
    assert json.loads(get(url, "/health")[1])["running"] >= 1, "the rows should still be decoding when the client hangs up"
    at_hangup = _decode_passes(url)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    hung_up = time.monotonic()
    while json.loads(get(url, "/health")[1])["running"] and time.monotonic() - hung_up < 5:
        time.sleep(0.02)
    freed = time.monotonic() - hung_up
    assert freed < 2.0, f"the slot was freed {freed:.2f} s after the client hung up"
    after = _decode_passes(url)
    time.sleep(0.5)
    assert _decode_passes(url) == after  # no pass ran for those rows once they left
    line = _log_line(log, "alpha=0:0:0:0:0:0")
    assert " 499 " in line and "finish=cancelled" in line and "error='client disconnected'" in line
    tokens = [int(t) for t in re.findall(r"tokens=(\d+)", line)]
    assert max(tokens) < 500 and after - at_hangup < 200  # far fewer passes than the 500 tokens asked for


def test_gauges_read_zero_when_idle(server, client):
    url = server[0]
    client.chat.completions.create(model="tuco", messages=CHAT, max_tokens=4, temperature=0)
    deadline = time.monotonic() + 5
    while _metric(url, "tuco_running_rows") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _metric(url, "tuco_running_rows") == 0 and _metric(url, "tuco_queue_depth") == 0
    assert json.loads(get(url, "/health")[1])["running"] == 0


def test_the_event_loop_answers_while_a_large_body_is_tokenised(server):
    """Tokenising a 1 MiB body runs on the tokenizer's own thread: /health answers meanwhile."""
    url = server[0]
    text = ("The quick brown fox jumps over the lazy dog. " * 24000)[: (1 << 20) - 200]
    body = {"prompt": text, "max_tokens": 1}
    result = {}

    def big():
        started = time.monotonic()
        result["status"] = post(url, "/v1/completions", body)[0]
        result["seconds"] = time.monotonic() - started

    t = threading.Thread(target=big)
    t.start()
    time.sleep(0.05)
    latencies = []
    while t.is_alive():
        started = time.monotonic()
        get(url, "/health", key="")
        latencies.append(time.monotonic() - started)
        time.sleep(0.01)
    t.join()
    assert result["status"] == 400  # far longer than the model's context: refused after tokenising
    assert latencies and max(latencies) < max(0.25, result["seconds"] / 3), (latencies, result)


def test_cross_site_requests_are_refused(server):
    url = server[0]
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        headers = {"Authorization": f"Bearer {KEY}"} | ({"Content-Type": ctype} if ctype else {})
        conn.request("POST", "/v1/chat/completions", json.dumps({"messages": CHAT}), headers)
        res = conn.getresponse()
        assert res.status == 415 and json.loads(res.read())["error"]["code"] == "unsupported_media_type"
        conn.close()
    port = url.rsplit(":", 1)[1]
    for host, ok in ((f"evil.example:{port}", False), (f"127.0.0.1.nip.io:{port}", False), ("127.0.0.1", False)):
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        conn.request("GET", "/health", headers={"Host": host})
        res = conn.getresponse()
        assert (res.status == 200) == ok and (ok or json.loads(res.read())["error"]["code"] == "invalid_host")
        conn.close()
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        conn.request("GET", "/health", headers={"Host": host})
        assert conn.getresponse().status == 200
        conn.close()


def test_seeded_samples_equal_generate_to(server, pair, tmp_path):
    """The one seeding rule: the same prompts and seed give the same samples through the server (keyed by
    the prompt's index in the request) and through a run (keyed by the prompt's id: "0", "1", ...)."""
    from tuco.runs.jobs import generate_to

    prompts = ["Once upon a time", "The sea is"]
    status, _, body = post(
        server[0], "/v1/completions", {"prompt": prompts, "max_tokens": 12, "temperature": 1.0, "seed": 1234, "tuco_detail": True}
    )
    assert status == 200
    generate_to(pair, prompts, tmp_path / "run", max_new_tokens=12, temperature=1.0, seed=1234, chat=False)
    rows = {r["id"]: r for r in tuco.load_run(tmp_path / "run").rows}
    for p, choice in enumerate(body["choices"]):
        assert choice["tuco"]["token_ids"] == rows[str(p)]["token_ids"]
        assert choice["text"] == rows[str(p)]["response"]
        assert choice["tuco"]["tokens"] == pytest.approx(rows[str(p)]["token_tuco"], abs=1e-5)
    # the chat route at index 0 and a chat run of the same prompt
    status, _, chat = post(
        server[0], "/v1/chat/completions", {"messages": CHAT, "max_tokens": 12, "temperature": 1.0, "seed": 7, "tuco_detail": True}
    )
    generate_to(pair, [CHAT[0]["content"]], tmp_path / "chat", max_new_tokens=12, temperature=1.0, seed=7, chat=True)
    (row,) = tuco.load_run(tmp_path / "chat").rows
    assert chat["choices"][0]["tuco"]["token_ids"] == row["token_ids"]


def test_tuco_detail_is_opt_in_and_matches_the_tokens(server, client, pair):
    kw = dict(model="tuco", messages=CHAT, max_tokens=10, temperature=0, extra_body={"alpha": 0.5})
    plain = list(client.chat.completions.create(stream=True, **kw))
    assert all(set(tuco_of(c.choices[0])) <= {"token", "prompt", "alpha", "response_mean"} for c in plain if c.choices)
    kw["extra_body"] = {"alpha": 0.5, "tuco_detail": True}
    chunks = [c for c in client.chat.completions.create(stream=True, **kw) if c.choices and "token" in tuco_of(c.choices[0])]
    whole = client.chat.completions.create(**kw).choices[0]
    t = tuco_of(whole)
    assert "".join(tuco_of(c.choices[0])["piece"] for c in chunks) == whole.message.content == "".join(t["pieces"])
    assert [tuco_of(c.choices[0])["token_id"] for c in chunks] == t["token_ids"]
    assert [tuco_of(c.choices[0])["index"] for c in chunks] == list(range(len(chunks)))
    flat = lambda rows: [v for row in rows for v in row]
    assert flat(tuco_of(c.choices[0])["layer_ptc"] for c in chunks) == pytest.approx(flat(t["layer_ptc"]), rel=1e-5)
    assert all(len(v) == pair.n_layers for v in t["layer_ptc"] + t["layer_ftc"])
    (g,) = tuco.generate(pair, [CHAT], alpha=0.5, max_new_tokens=10)
    assert t["token_ids"] == g.token_ids and t["tokens"] == pytest.approx(g.token_tuco, abs=1e-5)
    assert t["layer_ptc"][0] == pytest.approx(g.prompt_layer_ptc_l1, rel=1e-5)  # token 0 is read at the prompt's last token
    assert t["layer_ftc"][0] == pytest.approx(g.prompt_layer_ftc_l1, rel=1e-5)


def test_score_route_equals_tuco_score_and_generation(server, client, pair):
    """POST /v1/tuco/score: a given response scored teacher-forced equals `tuco score` on the same chat, and
    per token equals what generation reported for those tokens."""
    gen = client.chat.completions.create(
        model="tuco", messages=CHAT, max_tokens=12, temperature=0, extra_body={"alpha": 1.25, "tuco_detail": True}
    ).choices[0]
    chat = [*CHAT, {"role": "assistant", "content": gen.message.content}]
    status, _, body = post(server[0], "/v1/tuco/score", {"messages": chat, "alpha": 1.25, "tuco_detail": True})
    assert status == 200 and body["object"] == "tuco.score"
    (s,) = tuco.score(pair, [chat], alpha=1.25)
    t = body["tuco"]
    assert t["alpha"] == "1.25" and t["prompt"] == pytest.approx(s.tuco, abs=1e-6)
    assert t["tokens"] == pytest.approx(s.response_token_tuco, abs=1e-6) and t["token_ids"] == s.response_ids
    assert t["response_mean"] == pytest.approx(s.tuco_response, abs=1e-6)
    assert "".join(t["pieces"]) == gen.message.content and body["tuco_flag"] == (t["prompt"] < FLAG)
    g = tuco_of(gen)
    # the text re-tokenised may split differently from the generated ids (BPE): compare where the ids agree
    n = next((i for i, (a, b) in enumerate(zip(t["token_ids"], g["token_ids"])) if a != b), len(g["token_ids"]))
    assert n >= 3 and t["tokens"][:n] == pytest.approx(g["tokens"][:n], abs=1e-5)
    assert t["layer_ptc"][0] == pytest.approx(g["layer_ptc"][0], rel=1e-5) and t["layer_ptc"][1:] == [None] * (len(t["tokens"]) - 1)
    for bad, needle in (
        ({"messages": CHAT}, "the last message must be the assistant's"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "no message before it"),
        ({"messages": chat, "alpha": "1:2"}, "6 layers"),
    ):
        status, _, err = post(server[0], "/v1/tuco/score", bad)
        assert status == 400 and needle in err["error"]["message"], err


def test_scoring_between_decoding_steps_changes_neither(server, client, pair):
    """A score request arriving while other rows decode runs between two of their steps, inside the same
    engine: the running rows' tokens and TuCo equal their solo run, the score equals `tuco score`."""
    kw = dict(model="tuco", messages=CHAT, max_tokens=40, temperature=0, extra_body={"alpha": 0.0, "tuco_tokens": True})
    alone = tuco_of(client.chat.completions.create(**kw).choices[0])
    chat = [*CHAT, {"role": "assistant", "content": "Mix flour, water and yeast, then bake."}]
    stream = client.chat.completions.create(stream=True, **kw)
    chunks = [next(stream)]
    status, _, scored = post(server[0], "/v1/tuco/score", {"messages": chat, "alpha": 0.5})
    chunks += list(stream)
    assert status == 200 and sum("token" in tuco_of(c.choices[0]) for c in chunks if c.choices) == len(alone["tokens"])
    together = [tuco_of(c.choices[0]) for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert together["tokens"] == pytest.approx(alone["tokens"], abs=1e-5)
    (s,) = tuco.score(pair, [chat], alpha=0.5)
    assert scored["tuco"]["tokens"] == pytest.approx(s.response_token_tuco, abs=1e-5)


def test_save_as_run_writes_a_run_that_load_run_opens(server, client):
    url = server[0]
    ids = []
    for alpha in (0.0, 1.0):
        r = client.chat.completions.create(model="tuco", messages=CHAT, max_tokens=6, temperature=0, extra_body={"alpha": alpha})
        ids.append(r.id)
    chat = [*CHAT, {"role": "assistant", "content": "Mix flour and water."}]
    ids.append(post(url, "/v1/tuco/score", {"messages": chat})[2]["id"])
    status, _, saved = post(url, "/v1/tuco/runs", {"name": "from-the-api", "responses": ids})
    assert status == 200 and saved["rows"] == 3
    run = tuco.load_run(saved["path"])
    assert [r["kind"] for r in run.rows] == ["generation", "generation", "score"] and run.manifest["status"] == "finished"
    assert run.rows[0]["item"] == run.rows[1]["item"] == run.rows[2]["item"]  # one prompt: the alphas pair up
    assert [r["alpha"] for r in run.rows] == [0.0, 1.0, 1.0] and run.rows[2]["response"] == "Mix flour and water."
    assert (
        run.rows[1]["response"]
        == client.chat.completions.create(model="tuco", messages=CHAT, max_tokens=6, temperature=0).choices[0].message.content
    )
    for body, status_, code in (
        ({"name": "from-the-api", "responses": ids}, 409, "run_exists"),
        ({"name": "../escape", "responses": ids}, 400, None),
        ({"name": "..", "responses": ids}, 400, None),
        ({"name": "ok", "responses": ["chatcmpl-nope"]}, 404, "unknown_response"),
    ):
        got, _, err = post(url, "/v1/tuco/runs", body)
        assert got == status_ and (code is None or err["error"]["code"] == code), err


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
        ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 513}, None, 400, "--max-tokens"),
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
