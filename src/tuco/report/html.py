"""Build ONE self-contained HTML page from a run, a suite of runs, or several runs compared.

Order: the answer first (each experiment's question, findings with intervals, n and verdict, the
paper's value beside ours, its plots), then the per-condition summary in natural order (k = 0, 1, 2,
..., alpha ascending), distributions and per-layer profiles per group, prompts coloured by per-token
TuCo (the most and least fine-tuning-driven first, paired conditions side by side), the rows table
(collapsed), and the configuration last.

Every piece of prompt, model or file text goes through ``esc`` (``html.escape`` with quotes); the only
script is the static one below, allowed by hash in the Content-Security-Policy, which only sorts,
filters and shows rows already in the page. No CDN, no external request: images are data: URIs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import statistics
from html import escape
from typing import Any

from tuco.report.load import Run, RunFile
from tuco.report.svg import colour, layer_multiples, legend_gradient, scatter, stacked_bars, stage_colour, strips, text_colour

MAX_TABLE_ROWS = 3000  # more rows stay in the run file; the page says so
VISIBLE_ROWS = 12  # rows shown before "show all"
EXTREMES = 4  # most and least fine-tuning-driven prompts shown with their tokens
PAIRS = 3  # paired prompts shown side by side
TEXT_CHARS = 240  # prompt/response text in the rows table
GROUP_KEYS = ("group", "condition")


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included), after ``str``."""
    return escape("" if value is None else str(value), quote=True)


def display_token(token: str) -> str:
    """Readable text of a tokenizer token: byte-level BPE / sentencepiece space and newline markers."""
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n").replace("ĉ", "\t")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def row_value(row: dict[str, Any]) -> float | None:
    """The row's headline TuCo: ``tuco`` (score and experiment rows) or ``prompt_tuco`` (generation rows)."""
    return _num(row.get("tuco", row.get("prompt_tuco")))


def natural_key(text: Any) -> tuple:
    """Sort key that orders numbers inside text by value: k=2 before k=16, alpha=0.5 before alpha=1."""
    # a minus sign only where no word character precedes it: suffix-10 is suffix, 10 (not -10); alpha=-1 is -1
    parts = re.split(r"((?:(?<![\w.])-)?\d+(?:\.\d+)?(?:e-?\d+)?)", str(text))
    return tuple((0, float(p)) if re.fullmatch(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", p) else (1, p) for p in parts if p != "")


def group_of(rows: list[dict[str, Any]]) -> str | None:
    """The field that splits rows into groups: group/condition, or alpha when it varies."""
    for key in GROUP_KEYS:
        if any(key in r for r in rows):
            return key
    alphas = {str(r.get("alpha")) for r in rows if "alpha" in r}
    return "alpha" if len(alphas) > 1 else None


def groups_of(rows: list[dict[str, Any]], group: str | None) -> dict[str, list[dict[str, Any]]]:
    """Rows by group, groups in natural order ("all" when there is no group field)."""
    if not group:
        return {"all": rows}
    names = sorted({str(r.get(group)) for r in rows}, key=natural_key)
    return {g: [r for r in rows if str(r.get(group)) == g] for g in names}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    n = _num(v)
    if n is not None:
        return f"{n:.4f}"
    if isinstance(v, list):  # items are escaped by _fmt; the joined text must not be escaped again
        return ", ".join(_fmt(x) for x in v[:6]) + (" …" if len(v) > 6 else "")
    return esc(v)


def _kv_table(data: dict[str, Any], cls: str = "kv") -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{_fmt(v) if not isinstance(v, dict) else esc(v)}</td></tr>" for k, v in data.items())
    return f'<table class="{cls}">{cells}</table>'


def _img(name: str, data: bytes) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{b64}"><figcaption>{esc(name)}</figcaption></figure>'


# ---- findings first ----


VERDICT_CLASS = {"reproduced": "ok", "opposite": "bad", "not significant": "meh", "not measured": "meh"}


def findings_section(run: Run) -> str:
    """An experiment's question, findings (measured with interval and n, verdict, the paper's value) and plots."""
    m = run.metrics
    if not m:
        return ""
    out = [f'<section class="findings"><h2>{esc(m.get("experiment", run.name))}</h2><p class="question">{esc(m.get("question"))}</p>']
    found = m.get("findings") or []
    if found:
        head = "<tr><th>claim</th><th>measured (95% interval)</th><th>n</th><th>verdict</th><th>paper</th></tr>"
        body = "".join(
            f'<tr><td>{esc(f.get("claim"))}</td><td class="num">{esc(f.get("measured"))}</td><td>{esc(f.get("n"))}</td>'
            f'<td><span class="verdict {VERDICT_CLASS.get(str(f.get("verdict")), "meh")}">{esc(f.get("verdict"))}</span></td>'
            f'<td class="muted">{esc(f.get("paper"))}</td></tr>'
            for f in found
        )
        out.append(f'<table class="findings">{head}{body}</table>')
    else:
        out.append(f'<p class="muted">paper: {esc(m.get("paper"))}</p>')
    if run.plots:
        out.append('<div class="plots">' + "".join(_img(n, d) for n, d in run.plots) + "</div>")
    out.append("</section>")
    return "".join(out)


# ---- summary, distributions, profiles ----


def _stats(values: list[float]) -> list[str]:
    if not values:
        return ["0", "", "", "", ""]
    return [str(len(values)), *(f"{f(values):.4f}" for f in (statistics.fmean, statistics.median, min, max))]


def summary_table(rows: list[dict[str, Any]], group: str | None) -> str:
    """n / mean / median / min / max of the headline TuCo per group (natural order), then all rows."""
    head = "<tr><th>group</th><th>n</th><th>mean</th><th>median</th><th>min</th><th>max</th></tr>"
    lines = []
    if group:
        for g, mine in groups_of(rows, group).items():
            lines.append((f"{group}={g}", [v for r in mine if (v := row_value(r)) is not None]))
    lines.append(("all", [v for r in rows if (v := row_value(r)) is not None]))
    body = "".join(
        "<tr><td>" + esc(name) + "</td>" + "".join(f'<td class="num">{c}</td>' for c in _stats(vals)) + "</tr>" for name, vals in lines
    )
    return f'<table class="summary">{head}{body}</table>'


def distribution(rows: list[dict[str, Any]], group: str | None) -> str:
    """One strip (box + dots) per group on a shared axis."""
    groups = {k: [v for r in mine if (v := row_value(r)) is not None] for k, mine in groups_of(rows, group).items()}
    return strips(groups)


def _band(columns: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    means = [statistics.fmean(c) for c in columns]
    lows = [sorted(c)[len(c) // 4] for c in columns]
    highs = [sorted(c)[(3 * len(c)) // 4] for c in columns]
    return means, lows, highs


def profiles(rows: list[dict[str, Any]], group: str | None) -> str:
    """Small multiples per group: mean ||PTC_l||_1 and ||FTC_l||_1 per layer with the interquartile band,
    or an empty string (no section) when the rows carry no per-layer data."""
    out = {}
    for g, mine in groups_of(rows, group).items():
        ptc = [r["layer_ptc_l1"] for r in mine if isinstance(r.get("layer_ptc_l1"), list) and r["layer_ptc_l1"]]
        ftc = [r["layer_ftc_l1"] for r in mine if isinstance(r.get("layer_ftc_l1"), list) and r["layer_ftc_l1"]]
        if ptc and ftc and len({len(p) for p in ptc + ftc}) == 1:
            out[g] = {"||PTC_l||": _band([list(c) for c in zip(*ptc)]), "||FTC_l||": _band([list(c) for c in zip(*ftc)])}
    if not out:
        return ""
    key = (
        '<div class="keys"><span class="key"><span class="swatch" style="background:#1f77b4"></span>mean ||PTC_l||<sub>1</sub></span>'
        '<span class="key"><span class="swatch" style="background:#d62728"></span>mean ||FTC_l||<sub>1</sub></span>'
        '<span class="muted">band: interquartile range; x: layer; y: L1 norm at the last prompt token</span></div>'
    )
    return "<h3>Per-layer profiles</h3>" + layer_multiples(out) + key


# ---- tokens ----


def tokens_html(tokens: list[str], values: list[float] | None) -> str:
    """Tokens as spans coloured by per-token TuCo, the value in the hover title."""
    out = []
    for k, tok in enumerate(tokens):
        v = _num(values[k]) if values is not None and k < len(values) else None
        title = f"TuCo {v:.4f}" if v is not None else "no value"
        out.append(
            f'<span class="tok" style="background:{colour(v)};color:{text_colour(v)}" title="{esc(title)}">{esc(display_token(tok))}</span>'
        )
    return "".join(out)


def token_view(row: dict[str, Any]) -> str | None:
    """The coloured prompt and response of one row, or None when it has no per-token data."""
    parts = []
    if isinstance(row.get("prompt_tokens"), list):  # generation row with prompt per-token data
        parts.append(("prompt", tokens_html(row["prompt_tokens"], row.get("prompt_token_tuco"))))
    elif isinstance(row.get("tokens"), list) and "response" not in row:  # score row, --per-token
        parts.append(("prompt", tokens_html(row["tokens"], row.get("token_tuco"))))
    elif "response" in row:
        parts.append(("prompt", f'<span class="plain">{esc(str(row.get("prompt"))[-600:])}</span>'))
    if "response" in row and isinstance(row.get("tokens"), list):
        parts.append(("response", tokens_html(row["tokens"], row.get("token_tuco"))))
    if not any('class="tok"' in h for _, h in parts):
        return None
    meta = f"id {esc(row.get('id'))}"
    for key in ("group", "alpha", "tuco", "prompt_tuco", "mean_tuco", "refused"):
        if key in row and row[key] is not None:
            meta += f" · {esc(key)} {_fmt(row[key])}"
    body = "".join(f'<div class="seg"><span class="seg-label">{label}</span><div class="toks">{h}</div></div>' for label, h in parts)
    return f'<div class="tokview"><div class="meta">{meta}</div>{body}</div>'


def legend() -> str:
    """The colour key of per-token TuCo."""
    return (
        f'<div class="legend"><span>0 (pre-training)</span><span class="bar" style="background:{legend_gradient()}"></span>'
        '<span>1 (fine-tuning)</span><span class="muted">per-token TuCo; hover a token for its value</span></div>'
    )


def _pairs(rows: list[dict[str, Any]], group: str | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The same item under the first and the last condition (k = 0 vs 16, clean vs attacked, alpha 0 vs 1)."""
    if not group:
        return []
    by_group = groups_of(rows, group)
    if len(by_group) < 2:
        return []
    first, last = list(by_group.values())[0], list(by_group.values())[-1]
    # the item a row measures (experiments write "item": the same request under every condition); ids carry
    # the condition (k0-3 vs k16-3), so without an item nothing is paired
    if not any("item" in r for r in rows):
        return []
    key = lambda r: (r.get("task"), r.get("item"))  # noqa: E731
    index = {key(r): r for r in first}
    out = []
    for r in last:
        other = index.get(key(r))
        if other is not None and token_view(other) and token_view(r):
            out.append((other, r))
        if len(out) >= PAIRS:
            break
    return out


def tokens_section(rows: list[dict[str, Any]], group: str | None) -> str:
    """Most and least fine-tuning-driven prompts, then paired conditions side by side."""
    with_tokens = [r for r in rows if row_value(r) is not None and token_view(r)]
    if not with_tokens:
        return ""
    ranked = sorted(with_tokens, key=lambda r: -(row_value(r) or 0.0))
    top, bottom = ranked[:EXTREMES], [r for r in ranked[-EXTREMES:] if r not in ranked[:EXTREMES]]
    out = ["<h3>Tokens coloured by TuCo</h3>", legend()]
    out.append("<h4>Most fine-tuning-driven</h4>" + "".join(token_view(r) or "" for r in top))
    if bottom:
        out.append("<h4>Least fine-tuning-driven</h4>" + "".join(token_view(r) or "" for r in reversed(bottom)))
    pairs = _pairs(rows, group)
    if pairs:
        out.append(f"<h4>Paired: the same item, first vs last {esc(group)}</h4>")
        out += [f'<div class="pair">{token_view(a)}{token_view(b)}</div>' for a, b in pairs]
    return "".join(out)


# ---- chains: one share per training stage ----


def stages_section(rows: list[dict[str, Any]], files: list[RunFile]) -> str:
    """Chains: each prompt's stage shares (stacked bars), the mean share per layer, and tokens coloured by
    the stage that wrote most at each position. Empty when the rows carry no stage data."""
    with_shares = [r for r in rows if isinstance(r.get("stage_share"), list)]
    if not with_shares:
        return ""
    n = len(with_shares[0]["stage_share"])
    names = next((f.manifest.get("config", {}).get("checkpoints") for f in files if f.manifest.get("config", {}).get("checkpoints")), None)
    names = (
        [f"{k}: {str(c).rstrip('/').rsplit('/', 1)[-1]}" for k, c in enumerate(names)]
        if names and len(names) == n
        else [f"stage {k}" for k in range(n)]
    )
    out = [
        "<h3>Stage shares</h3>",
        "<p class=\"muted\">each stage's share of the last token's update: ||Σ_l C_k,l||₁ / Σ_j ||Σ_l C_j,l||₁</p>",
    ]
    out.append(stacked_bars([(str(r.get("id")), r["stage_share"]) for r in with_shares[:40]], names))
    layered = [r["layer_stage_l1"] for r in with_shares if isinstance(r.get("layer_stage_l1"), list)]
    if layered:
        n_layers = len(layered[0][0])
        per_layer = []
        for layer in range(n_layers):
            norms = [statistics.fmean(r[k][layer] for r in layered) for k in range(n)]
            total = sum(norms) or 1.0
            per_layer.append((f"layer {layer}", [v / total for v in norms]))
        out.append("<h4>Mean share per layer (||C_k,l||₁ over stages)</h4>" + stacked_bars(per_layer, names))
    views = []
    for r in with_shares:
        if isinstance(r.get("tokens"), list) and isinstance(r.get("token_stage"), list):
            spans = "".join(
                f'<span class="tok" style="background:{stage_colour(st)}" title="{esc(names[st] if st < len(names) else st)}">'
                f"{esc(display_token(t))}</span>"
                for t, st in zip(r["tokens"], r["token_stage"])
            )
            views.append(f'<div class="tokview"><div class="meta">id {esc(r.get("id"))}</div><div class="toks">{spans}</div></div>')
        if len(views) >= EXTREMES:
            break
    if views:
        out.append("<h4>Tokens coloured by the stage that wrote most there</h4>" + "".join(views))
    return "".join(out)


# ---- rows table ----


def _columns(rows: list[dict[str, Any]], group: str | None) -> list[str]:
    wanted = (
        ["id"]
        + ([group] if group and group != "alpha" else [])
        + [
            "alpha",
            "tuco",
            "tuco_unscaled",
            "preco",
            "prompt_tuco",
            "mean_tuco",
            "tuco_last",
            "tuco_request",
            "tuco_first_generated",
            "tuco_response",
            "output_co",
            "kl_ft_pt",
            "refused",
            "chosen",
            "n_tokens",
            "n_new_tokens",
            "prompt",
            "response",
        ]
    )
    return [c for c in dict.fromkeys(wanted) if any(r.get(c) not in (None, "", []) for r in rows)]  # empty columns hidden


def rows_table(rows: list[dict[str, Any]], group: str | None) -> str:
    """All rows (up to MAX_TABLE_ROWS) in a sortable, filterable table that shows its first rows until expanded."""
    cols = _columns(rows, group)
    head = "".join(f'<th data-col="{i}" title="click to sort">{esc(c)}</th>' for i, c in enumerate(cols))
    body = []
    for r in rows[:MAX_TABLE_ROWS]:
        cells = []
        for c in cols:
            v = r.get(c)
            text = esc(str(v or "")[:TEXT_CHARS]) if c in ("prompt", "response") else _fmt(v)
            sort = _num(v)
            sort_attr = f' data-v="{sort!r}"' if sort is not None else ""
            cls = ' class="num"' if sort is not None else ""
            cells.append(f"<td{sort_attr}{cls}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f'<p class="muted">The table holds the first {MAX_TABLE_ROWS} of {len(rows)} rows; all rows are in the run file.</p>'
    return (
        f'<div class="rowsbox"><div class="controls"><input class="filter" type="search" placeholder="filter all rows…" '
        f'aria-label="filter rows"><button class="more" type="button">show all rows</button><span class="count"></span></div>'
        f'<table class="rows sortable" data-visible="{VISIBLE_ROWS}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        f"</table>{note}</div>"
    )


def config_section(files: list[RunFile]) -> str:
    """Each file's manifest (configuration, versions, status), folded."""
    out = []
    for f in files:
        if not f.manifest:
            continue
        cfg = dict(f.manifest.get("config", {}))
        opts = cfg.pop("options", None)
        status = {k: f.manifest.get(k) for k in ("status", "n_rows", "n_prompts", "n_skipped", "created", "seconds") if k in f.manifest}
        parts = [
            _kv_table(cfg),
            _kv_table(opts) if isinstance(opts, dict) else "",
            _kv_table(status),
            _kv_table(f.manifest.get("versions", {})),
        ]
        out.append(f'<details><summary>Configuration of {esc(f.name)}</summary><div class="cols">{"".join(parts)}</div></details>')
    return "".join(out)


def results_section(run: Run, title: str | None = None) -> str:
    """Everything measured in one run, after its findings: summary, distributions, profiles, tokens, rows, config."""
    rows = run.rows
    out = [f'<section class="results"><h2>{esc(title or "Results")}</h2>']
    if not rows:
        out.append('<p class="empty">This run has no rows.</p>' + config_section(run.files) + "</section>")
        return "".join(out)
    group = group_of(rows)
    out.append("<h3>Summary by condition</h3>" + summary_table(rows, group))
    out.append("<h3>Distribution</h3>" + distribution(rows, group))
    out.append(profiles(rows, group))
    out.append(stages_section(rows, run.files))
    out.append(tokens_section(rows, group))
    out.append(f"<h3>Rows ({len(rows)})</h3>" + rows_table(rows, group))
    out.append(config_section(run.files) + "</section>")
    return "".join(out)


# ---- page ----


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:20px;margin:0 0 2px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin:20px 0 6px}
h3{font-size:15px;margin:18px 0 6px}h4{font-size:13px;margin:12px 0 4px;color:#444}.muted{color:#777}.empty{color:#a00}
.question{margin:0 0 6px;font-weight:600}
table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #e3e3e3;padding:2px 7px;text-align:left;vertical-align:top}
td.num{font-variant-numeric:tabular-nums;font-family:ui-monospace,Menlo,Consolas,monospace;text-align:right;white-space:nowrap}
table.kv th{background:#f6f6f6;font-weight:600}table.findings{width:100%}table.findings th{background:#f2f5fa}
.verdict{padding:1px 6px;border-radius:8px;font-size:12px;white-space:nowrap}.verdict.ok{background:#d7f5dd;color:#14532d}
.verdict.bad{background:#fde2e1;color:#7f1d1d}.verdict.meh{background:#eee;color:#444}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots figure{margin:4px 0;flex:0 1 48%}.plots img{width:100%;border:1px solid #eee}
figcaption{font-size:11px;color:#777}
table.rows{width:100%;font-size:12.5px}table.rows th{cursor:pointer;background:#f6f6f6;user-select:none}
table.rows th.asc:after{content:" ▲"}table.rows th.desc:after{content:" ▼"}table.rows td{max-width:380px;overflow-wrap:anywhere}
.cols{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}.controls{margin:6px 0;display:flex;gap:8px;align-items:center}
.filter{padding:3px 8px;width:260px}.count{color:#777}.keys{margin:4px 0;font-size:12px}.key{margin-right:14px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.legend{display:flex;gap:8px;align-items:center;margin:6px 0;font-size:12px}.legend .bar{display:inline-block;width:200px;height:12px;border:1px solid #ccc}
.tokview{border:1px solid #e3e3e3;border-radius:6px;padding:6px 9px;margin:8px 0;min-width:0}.meta{color:#555;font-size:12px;margin-bottom:3px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.seg{display:flex;gap:8px;margin:3px 0}.seg-label{flex:0 0 60px;color:#777;font-size:12px;padding-top:2px}
.toks{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;line-height:1.75;overflow-wrap:anywhere}
.tok{border-radius:2px;padding:1px 0;box-shadow:inset -1px 0 rgba(0,0,0,.12)}.plain{white-space:pre-wrap}
nav.toc{font-size:12.5px;color:#555}nav.toc a{margin-right:10px}details{margin:8px 0}summary{cursor:pointer;color:#444}
"""

# Static script: sorting, filtering and expanding the rendered tables. It never turns data into HTML.
JS = """
(function(){
  document.querySelectorAll('table.sortable').forEach(function(table){
    var tbody=table.tBodies[0], box=table.closest('.rowsbox');
    var input=box.querySelector('.filter'), count=box.querySelector('.count'), more=box.querySelector('.more');
    var visible=+table.dataset.visible, expanded=false;
    function update(){
      var q=(input.value||'').toLowerCase(), shown=0, matched=0;
      Array.prototype.forEach.call(tbody.rows,function(r){
        var ok=!q||r.textContent.toLowerCase().indexOf(q)>=0;
        if(ok)matched++;
        var show=ok&&(expanded||q||matched<=visible); r.hidden=!show; if(show)shown++;
      });
      count.textContent='showing '+shown+' of '+matched+(q?' matching':'')+' rows';
      more.hidden=expanded||q||matched<=visible;
    }
    table.querySelectorAll('th').forEach(function(th){
      th.addEventListener('click',function(){
        var col=+th.dataset.col, asc=!th.classList.contains('asc');
        table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc?'asc':'desc');
        var rows=Array.prototype.slice.call(tbody.rows);
        rows.sort(function(a,b){
          var x=a.cells[col], y=b.cells[col];
          var vx=x.dataset.v, vy=y.dataset.v, r;
          if(vx!==undefined&&vy!==undefined){r=parseFloat(vx)-parseFloat(vy);}
          else{r=x.textContent.localeCompare(y.textContent,undefined,{numeric:true});}
          return asc?r:-r;
        });
        rows.forEach(function(r){tbody.appendChild(r);});
        update();
      });
    });
    more.addEventListener('click',function(){expanded=true;update();});
    input.addEventListener('input',update); update();
  });
  document.body.setAttribute('data-ready','1');
})();
"""


def _page(title: str, subtitle: str, body: str) -> str:
    # Only our own script may run (by hash): an injected <script> or on*= handler is refused even if
    # escaping ever failed. No network: default-src 'none'.
    script_hash = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="muted">{subtitle}</p></header>{body}<script>{JS}</script></body></html>'
    )


def build_html(run: Run, title: str | None = None) -> str:
    """The whole report page for a run or a suite of runs, as one string: findings first."""
    title = title or f"tuco report — {run.source.name}"
    members = run.children or [run]
    n_rows = sum(len(m.rows) for m in members)
    subtitle = (
        f"source: {esc(run.source)} · {len(members)} run{'s' if len(members) > 1 else ''} · {n_rows} rows · "
        "TuCo = ||Σ FTC||₁ / (||Σ PTC||₁ + ||Σ FTC||₁) at the last prompt token"
    )
    findings = "".join(findings_section(m) for m in members)
    toc = ""
    if len(members) > 1:
        toc = '<nav class="toc">details: ' + "".join(f'<a href="#run-{k}">{esc(m.name)}</a>' for k, m in enumerate(members)) + "</nav>"
    details = "".join(f'<div id="run-{k}">{results_section(m, f"Details: {m.name}")}</div>' for k, m in enumerate(members))
    return _page(title, subtitle, findings + toc + details)


# ---- several runs side by side ----


def _keyed(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A run's rows by prompt id; by id and alpha when the run holds several alphas (a generate run with
    --alpha 0 1), so two runs at different alphas still align prompt by prompt."""
    alphas = {str(r.get("alpha")) for r in rows if "alpha" in r}
    several = len(alphas) > 1
    return {f"{r.get('id')}" + (f" @ alpha {r.get('alpha')}" if several else ""): r for r in rows if row_value(r) is not None}


def build_comparison(runs: list[Run], title: str | None = None) -> str:
    """Runs side by side: findings of each, then the headline TuCo per prompt aligned by id (shared ids
    only), the difference to the first run with a paired bootstrap interval, and a scatter per run."""
    from tuco.stats import bootstrap_mean_diff

    names = [f"{k + 1}: {r.source.name}" for k, r in enumerate(runs)]
    title = title or "tuco comparison — " + " vs ".join(r.source.name for r in runs)
    findings = "".join(findings_section(m) for r in runs for m in (r.children or [r]))
    tables = [_keyed(r.rows) for r in runs]
    shared = [k for k in tables[0] if all(k in t for t in tables[1:])]
    out = [findings, "<section><h2>Prompt by prompt</h2>"]
    out.append(
        "<p>"
        + " · ".join(f"<b>{esc(n)}</b> ({len(t)} rows)" for n, t in zip(names, tables))
        + f" · <b>{len(shared)}</b> ids in every run</p>"
    )
    if not shared:
        out.append('<p class="empty">The runs share no prompt id, so they cannot be aligned.</p></section>')
        return _page(title, "comparison", "".join(out))
    base = [row_value(tables[0][k]) or 0.0 for k in shared]
    summary = ["<tr><th>run</th><th>mean TuCo</th><th>mean difference vs run 1 (95% interval)</th></tr>"]
    plots = []
    for n, t in zip(names, tables):
        vals = [row_value(t[k]) or 0.0 for k in shared]
        cell = ""
        if t is not tables[0]:
            d, lo, hi = bootstrap_mean_diff(base, vals, paired=True)
            cell = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] (paired n={len(vals)})"
            plots.append(
                f"<figure>{scatter(list(zip(base, vals)), names[0], n)}<figcaption>{esc(n)} vs {esc(names[0])}</figcaption></figure>"
            )
        summary.append(f'<tr><td>{esc(n)}</td><td class="num">{statistics.fmean(vals):.4f}</td><td class="num">{esc(cell)}</td></tr>')
    out.append(f'<table class="summary">{"".join(summary)}</table><div class="plots">{"".join(plots)}</div>')
    cols = ["id"] + names + [f"{n} − 1" for n in names[1:]] + ["prompt"]
    head = "".join(f'<th data-col="{i}" title="click to sort">{esc(c)}</th>' for i, c in enumerate(cols))
    body = []
    for k in shared[:MAX_TABLE_ROWS]:
        vals = [row_value(t[k]) or 0.0 for t in tables]
        cells = [f"<td>{esc(k)}</td>"] + [f'<td class="num" data-v="{v!r}">{v:.4f}</td>' for v in vals]
        cells += [f'<td class="num" data-v="{v - vals[0]!r}">{v - vals[0]:+.4f}</td>' for v in vals[1:]]
        cells.append(f"<td>{esc(str(tables[0][k].get('prompt', ''))[:TEXT_CHARS])}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    out.append(
        f'<div class="rowsbox"><div class="controls"><input class="filter" type="search" placeholder="filter all rows…" '
        f'aria-label="filter rows"><button class="more" type="button">show all rows</button><span class="count"></span></div>'
        f'<table class="rows sortable" data-visible="{VISIBLE_ROWS}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )
    out.append("</section>")
    return _page(title, "comparison of " + " · ".join(esc(r.source) for r in runs), "".join(out))
