// tuco playground: a client of this server's own API (/v1/chat/completions, /v1/completions and
// /v1/tuco/score with "tuco_detail": true; /v1/tuco/info; /v1/tuco/runs). No build step, no network
// beyond this server. Every text from the user or the model is set with textContent, never as markup.
"use strict";

(function () {
  const KEY = "tuco-playground-key"; // sessionStorage: this tab only, gone when it closes
  const DEFAULT_ALPHAS = ["0", "1", "1.25"];
  const state = { info: null, palette: null, controllers: new Set(), responses: [], started: 0, running: false };
  const columns = new Map(); // column element -> its state

  const $ = (id) => document.getElementById(id);

  // ---- talking to the server ----

  function apiKey() {
    return sessionStorage.getItem(KEY) || "";
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = apiKey();
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function httpError(res) {
    let message = res.status + " " + res.statusText;
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (e) {
      // not JSON: keep the status line
    }
    if (res.status === 401) showKeyForm();
    return new HttpError(res.status, message);
  }

  async function api(path, body, signal) {
    const init = { method: body === undefined ? "GET" : "POST", headers: headers(), cache: "no-store", signal };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(path, init);
    if (!res.ok) throw await httpError(res);
    return res;
  }

  // Server-sent events of a streamed completion: calls onChunk with each parsed chunk.
  async function readStream(res, onChunk) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") return;
          onChunk(JSON.parse(data));
        }
      }
    }
  }

  // ---- the colour scale (tuco.palette, exported by the server) ----

  function roundHalfEven(x) {
    // Python's round(), which tuco.palette uses
    const r = Math.round(x);
    return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function colour(value) {
    const pal = state.palette;
    if (value === null || value === undefined || Number.isNaN(value)) return pal.missing;
    const v = Math.min(1, Math.max(0, value));
    const stops = pal.stops;
    for (let k = 0; k + 1 < stops.length; k++) {
      const [x0, c0] = stops[k];
      const [x1, c1] = stops[k + 1];
      if (v <= x1) {
        const t = (v - x0) / (x1 - x0);
        return "#" + c0.map((a, i) => roundHalfEven(a + (c1[i] - a) * t).toString(16).padStart(2, "0")).join("");
      }
    }
    return "#800026";
  }

  function textColour(value) {
    return value > state.palette.dark_above ? "#ffffff" : "#000000";
  }

  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : Number(v).toFixed(4));
  const pct = (v) => Math.round(100 * v) + "%";

  // ---- columns ----

  function addColumn(alpha) {
    const node = $("column-template").content.firstElementChild.cloneNode(true);
    const col = {
      node,
      alphaInput: node.querySelector(".alpha"),
      promptEl: node.querySelector(".prompt-tuco"),
      readingEl: node.querySelector(".reading"),
      flagEl: node.querySelector(".flag"),
      tokensEl: node.querySelector(".tokens"),
      footEl: node.querySelector(".foot"),
      tokens: [],
      current: 0,
      responseId: null,
      finished: false,
    };
    col.alphaInput.value = alpha;
    node.querySelector(".remove").addEventListener("click", () => removeColumn(col));
    col.alphaInput.addEventListener("input", () => labelColumn(col));
    col.tokensEl.addEventListener("mouseover", (e) => {
      const tok = e.target.closest(".tok");
      if (tok) showDetail(col, Number(tok.dataset.index));
    });
    col.tokensEl.addEventListener("focusin", (e) => {
      const tok = e.target.closest(".tok");
      if (tok) showDetail(col, Number(tok.dataset.index));
    });
    col.tokensEl.addEventListener("keydown", (e) => moveFocus(col, e));
    columns.set(node, col);
    $("columns").append(node);
    labelColumn(col);
    return col;
  }

  function removeColumn(col) {
    columns.delete(col.node);
    col.node.remove();
  }

  function labelColumn(col) {
    const alpha = col.alphaInput.value.trim() || "1";
    col.node.setAttribute("aria-label", "alpha " + alpha);
    col.tokensEl.setAttribute("aria-label", "response tokens at alpha " + alpha + ", coloured by TuCo");
    col.alphaInput.setAttribute("aria-label", "alpha of this column");
  }

  function resetColumn(col) {
    col.tokens = [];
    col.current = 0;
    col.responseId = null;
    col.finished = false;
    col.promptTuco = undefined;
    col.firstTokenMs = undefined;
    col.tokensEl.replaceChildren();
    col.promptEl.textContent = "";
    col.readingEl.textContent = "";
    col.flagEl.hidden = true;
    col.flagEl.className = "flag";
    col.footEl.textContent = "";
    col.footEl.className = "foot muted";
    delete col.node.dataset.firstTokenMs;
    delete col.node.dataset.state;
  }

  function reading(alphaText, v) {
    const a = Number(alphaText);
    if (alphaText !== "" && !Number.isNaN(a) && a === 0) {
      return "At alpha 0 the fine-tuning component is switched off: the pre-trained blocks wrote all of the update.";
    }
    if (alphaText !== "" && !Number.isNaN(a) && a === 1) {
      return (
        "Fine-tuning wrote " + pct(v) + " of the update at the prompt's last token; pre-training (PreCo) wrote the other " + pct(1 - v) + "."
      );
    }
    return "At alpha " + alphaText + ", the scaled fine-tuning component wrote " + pct(v) + " of the steered model's update at the prompt's last token.";
  }

  function setPrompt(col, v) {
    col.promptTuco = v;
    col.promptEl.textContent = "Prompt TuCo " + fmt(v) + " · PreCo " + fmt(1 - v);
    col.readingEl.textContent = reading(col.alphaText, v);
  }

  function setFlag(col, flagged) {
    const below = state.info && state.info.flag_below;
    if (below === null || below === undefined || flagged === undefined) return;
    col.flagEl.hidden = false;
    if (Number(col.alphaText) !== 1) {
      col.flagEl.textContent = "The calibrated flag (threshold " + below + ") reads the model itself: see the alpha 1 column.";
      return;
    }
    col.flagEl.classList.toggle("flagged", flagged);
    col.flagEl.textContent = flagged
      ? "Flagged: the prompt's TuCo is below the calibrated threshold " + below + " (fine-tuning wrote little of it, as in jailbreaks)."
      : "Not flagged: the prompt's TuCo is above the calibrated threshold " + below + ".";
  }

  function addToken(col, piece, v, ptc, ftc, id) {
    const i = col.tokens.length;
    col.tokens.push({ piece, tuco: v, ptc: ptc || null, ftc: ftc || null, id });
    const span = document.createElement("span");
    span.className = "tok" + (piece ? "" : " empty");
    span.textContent = piece;
    span.style.backgroundColor = colour(v);
    span.style.color = textColour(v);
    span.dataset.index = String(i);
    span.dataset.tuco = String(v);
    span.title = "TuCo " + fmt(v);
    span.tabIndex = i === 0 ? 0 : -1;
    col.tokensEl.append(span);
    if (i === 0) {
      col.firstTokenMs = performance.now() - state.started;
      col.node.dataset.firstTokenMs = col.firstTokenMs.toFixed(0);
    }
  }

  function moveFocus(col, e) {
    const spans = col.tokensEl.querySelectorAll(".tok");
    if (!spans.length) return;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    let next;
    if (e.key in moves) next = col.current + moves[e.key];
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = spans.length - 1;
    else return;
    e.preventDefault();
    next = Math.max(0, Math.min(spans.length - 1, next));
    spans[col.current].tabIndex = -1;
    col.current = next;
    spans[next].tabIndex = 0;
    spans[next].focus();
  }

  function showDetail(col, i) {
    const t = col.tokens[i];
    if (!t) return;
    const shown = t.piece ? "“" + t.piece + "”" : "(a token with no text: the end of the response, or a special token)";
    const where = i === 0 ? ", read at the prompt's last token" : "";
    let text = shown + " · token " + (i + 1) + " of " + col.tokens.length + " at alpha " + col.alphaText + where;
    text += " · TuCo " + fmt(t.tuco) + " · PreCo " + fmt(1 - t.tuco);
    const chart = $("detail-chart");
    chart.replaceChildren();
    chart.removeAttribute("aria-label");
    $("detail-key").hidden = !(t.ptc && t.ftc);
    if (!t.ptc || !t.ftc) {
      $("detail-text").textContent = text + " · per-layer norms: not measured for this token (scoring records them at the prompt's last token only)";
      return;
    }
    const top = Math.max(...t.ptc, ...t.ftc, 1e-12);
    const per = t.ptc.map((p, l) => "layer " + l + ": PTC " + p.toFixed(1) + ", FTC " + t.ftc[l].toFixed(1));
    $("detail-text").textContent = text;
    chart.setAttribute("aria-label", "per-layer L1 norms: " + per.join("; "));
    t.ptc.forEach((p, l) => {
      const layer = document.createElement("span");
      layer.className = "layer";
      layer.title = per[l];
      for (const [cls, value] of [["ptc", p], ["ftc", t.ftc[l]]]) {
        const bar = document.createElement("span");
        bar.className = "bar " + cls;
        bar.style.height = ((100 * value) / top).toFixed(2) + "%";
        layer.append(bar);
      }
      chart.append(layer);
    });
    $("detail-layers").textContent = "layers 0–" + (t.ptc.length - 1);
  }

  function finishColumn(col, reason, tuco, flagged) {
    col.finished = true;
    col.node.dataset.state = reason;
    if (tuco && tuco.prompt !== undefined && col.promptTuco === undefined) setPrompt(col, tuco.prompt);
    setFlag(col, flagged);
    const mean = tuco && tuco.response_mean !== undefined ? " · response mean TuCo " + fmt(tuco.response_mean) : "";
    const first = col.firstTokenMs !== undefined ? " · first token after " + col.firstTokenMs.toFixed(0) + " ms" : "";
    col.footEl.textContent = col.tokens.length + " tokens" + mean + " · " + reason + first;
  }

  function columnError(col, message) {
    col.node.dataset.state = "error";
    col.footEl.textContent = message;
    col.footEl.className = "foot error";
  }

  // ---- running ----

  function mode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function sampling() {
    const out = {};
    const maxTokens = parseInt($("max-tokens").value, 10);
    if (!Number.isNaN(maxTokens)) out.max_tokens = maxTokens;
    const temperature = parseFloat($("temperature").value);
    if (!Number.isNaN(temperature)) out.temperature = temperature;
    const seed = $("seed").value.trim();
    if (seed !== "") out.seed = parseInt(seed, 10);
    return out;
  }

  function messages(withResponse) {
    const out = [];
    const system = $("system").value;
    if (system.trim()) out.push({ role: "system", content: system });
    out.push({ role: "user", content: $("prompt").value });
    if (withResponse) out.push({ role: "assistant", content: $("response").value });
    return out;
  }

  function remember(col, id) {
    if (id && !col.responseId) {
      col.responseId = id;
      state.responses.push(id);
      col.node.dataset.responseId = id;
      updateSave();
    }
  }

  async function runColumn(col, how, settings) {
    resetColumn(col);
    col.alphaText = col.alphaInput.value.trim() || "1";
    col.node.dataset.state = "running";
    const controller = new AbortController();
    state.controllers.add(controller);
    const model = state.info ? state.info.model : "tuco";
    try {
      if (how === "score") {
        const body = { model, messages: messages(true), alpha: col.alphaText, tuco_detail: true };
        const res = await api("/v1/tuco/score", body, controller.signal);
        const out = await res.json();
        remember(col, out.id);
        const t = out.tuco;
        setPrompt(col, t.prompt);
        t.tokens.forEach((v, i) => addToken(col, t.pieces[i], v, t.layer_ptc[i], t.layer_ftc[i], t.token_ids[i]));
        finishColumn(col, "scored", t, out.tuco_flag);
        return;
      }
      const body = { model, alpha: col.alphaText, stream: true, tuco_detail: true, ...settings };
      let path = "/v1/chat/completions";
      if (how === "chat") body.messages = messages(false);
      else {
        path = "/v1/completions";
        body.prompt = $("prompt").value;
      }
      const res = await api(path, body, controller.signal);
      await readStream(res, (chunk) => {
        if (chunk.error) throw new HttpError(500, chunk.error.message);
        remember(col, chunk.id);
        for (const choice of chunk.choices || []) {
          const t = choice.tuco || {};
          if (t.token !== undefined) {
            if (t.prompt !== undefined) setPrompt(col, t.prompt);
            addToken(col, t.piece, t.token, t.layer_ptc, t.layer_ftc, t.token_id);
          }
          if (choice.finish_reason) finishColumn(col, choice.finish_reason, t, choice.tuco_flag);
        }
      });
    } catch (e) {
      if (e.name === "AbortError") finishColumn(col, "stopped");
      else columnError(col, e.message);
    } finally {
      state.controllers.delete(controller);
    }
  }

  async function run() {
    if (state.running) stop();
    const how = mode();
    if (!$("prompt").value.trim()) return status("Write a prompt first.", true);
    if (how === "score" && !$("response").value.trim()) return status("Paste the response to score first.", true);
    if (!columns.size) addColumn("1");
    const settings = sampling();
    const ran = $("ran");
    ran.hidden = false;
    ran.textContent = (how === "score" ? "Scored: " : "Prompt: ") + $("prompt").value;
    state.started = performance.now();
    setRunning(true);
    status(how === "score" ? "Scoring…" : "Generating…");
    await Promise.allSettled([...columns.values()].map((col) => runColumn(col, how, settings)));
    setRunning(false);
    const failed = [...columns.values()].filter((c) => c.node.dataset.state === "error").length;
    status(failed ? failed + " column(s) failed: see their messages." : "Done. Hover or focus a token for its TuCo.", failed > 0);
  }

  function stop() {
    for (const c of state.controllers) c.abort();
    state.controllers.clear();
    if (state.running) status("Stopped: the server stops decoding those responses.");
  }

  function setRunning(on) {
    state.running = on;
    $("stop").disabled = !on;
    document.body.dataset.running = on ? "1" : "0";
  }

  function status(text, error) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", Boolean(error));
  }

  // ---- saving ----

  function updateSave() {
    const on = Boolean(state.info && state.info.runs);
    $("save").disabled = !on || state.responses.length === 0;
    if (!on) $("save-status").textContent = "To save, start the server with tuco serve --runs DIR.";
  }

  async function save() {
    const name = $("run-name").value.trim();
    const out = $("save-status");
    out.textContent = "Saving…";
    try {
      const res = await api("/v1/tuco/runs", { name, responses: state.responses });
      const body = await res.json();
      out.textContent = "Saved " + body.rows + " rows to " + body.path + " (tuco report, tuco.load_run).";
      document.body.dataset.saved = body.path;
    } catch (e) {
      out.textContent = "Not saved: " + e.message;
    }
  }

  // ---- the page ----

  function showModes() {
    const how = mode();
    $("system-box").hidden = how === "plain";
    $("response-box").hidden = how !== "score";
    for (const id of ["max-tokens", "temperature", "seed"]) $(id).disabled = how === "score";
  }

  function showKeyForm() {
    $("key-form").hidden = false;
    $("key").focus();
  }

  function showInfo() {
    const info = state.info;
    const stages = info.stages > 1 ? ", a chain of " + (info.stages + 1) + " checkpoints (alpha per stage: 1/0.5)" : "";
    const flag = info.flag_below !== null ? "; flags prompts whose TuCo is below " + info.flag_below : "";
    $("model-line").textContent = "model " + info.model + ": " + info.layers + " layers" + stages + flag;
    if (!info.chat_template) {
      for (const input of document.querySelectorAll('input[name="mode"]')) input.disabled = input.value !== "plain";
      document.querySelector('input[name="mode"][value="plain"]').checked = true;
      showModes();
    }
    $("max-tokens").max = String(info.max_tokens);
    updateSave();
  }

  async function connect() {
    try {
      const res = await api("/v1/tuco/info");
      state.info = await res.json();
      $("key-form").hidden = true;
      showInfo();
      status("Ready: write a prompt and press Run.");
      document.body.dataset.ready = "1";
    } catch (e) {
      status(e.status === 401 ? "Enter the server's API key above." : "Cannot reach the server: " + e.message, e.status !== 401);
    }
  }

  async function init() {
    state.palette = await (await fetch("/playground/palette.json", { cache: "no-store" })).json();
    $("legend-bar").style.background = state.palette.gradient;
    document.documentElement.style.setProperty("--ptc", state.palette.ptc);
    document.documentElement.style.setProperty("--ftc", state.palette.ftc);
    DEFAULT_ALPHAS.forEach(addColumn);
    $("run").addEventListener("click", run);
    $("stop").addEventListener("click", stop);
    $("add").addEventListener("click", () => addColumn("1").alphaInput.focus());
    $("save").addEventListener("click", save);
    for (const input of document.querySelectorAll('input[name="mode"]')) input.addEventListener("change", showModes);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        run();
      } else if (e.key === "Escape" && state.running) stop();
    });
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, $("key").value);
      $("key").value = "";
      connect();
    });
    showModes();
    await connect();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
