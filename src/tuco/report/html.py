"""Build ONE self-contained HTML page from a run: configuration, summary, distribution, sortable rows,
per-token colouring, per-layer profile, experiment metrics and plots.

Every piece of prompt, model or file text goes through ``esc`` (``html.escape`` with quotes); the only
script is the static one below, which reads nothing but the DOM it is given and writes with
``textContent``. No CDN, no external request: images are inlined as data: URIs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
from html import escape
from typing import Any

from tuco.report.load import Run, RunFile
from tuco.report.svg import GROUP_COLOURS, colour, histogram, layer_profile, legend_gradient, text_colour

MAX_TABLE_ROWS = 5000  # more rows stay in the run file; the page says so
MAX_TOKEN_VIEWS = 200
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
    """The row's headline TuCo: ``tuco`` (score rows) or ``prompt_tuco`` (generation rows)."""
    return _num(row.get("tuco", row.get("prompt_tuco")))


def group_of(rows: list[dict[str, Any]]) -> str | None:
    """The field that splits rows into groups: group/condition, or alpha when it varies."""
    for key in GROUP_KEYS:
        if any(key in r for r in rows):
            return key
    alphas = {str(r.get("alpha")) for r in rows if "alpha" in r}
    return "alpha" if len(alphas) > 1 else None


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    n = _num(v)
    return f"{n:.4f}" if n is not None else esc(v)


def _kv_table(data: dict[str, Any], cls: str = "kv") -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in data.items())
    return f'<table class="{cls}">{cells}</table>'


def _stats(values: list[float]) -> list[str]:
    if not values:
        return ["0", "", "", "", ""]
    return [str(len(values)), *(f"{f(values):.4f}" for f in (statistics.fmean, statistics.median, min, max))]


def summary_table(rows: list[dict[str, Any]], group: str | None) -> str:
    """n / mean / median / min / max of the headline TuCo, overall and per group."""
    head = "<tr><th>group</th><th>n</th><th>mean</th><th>median</th><th>min</th><th>max</th></tr>"
    lines = [("all", [v for r in rows if (v := row_value(r)) is not None])]
    if group:
        for g in sorted({str(r.get(group)) for r in rows}):
            lines.append((f"{group}={g}", [v for r in rows if str(r.get(group)) == g and (v := row_value(r)) is not None]))
    body = "".join("<tr><td>" + esc(name) + "</td>" + "".join(f"<td>{c}</td>" for c in _stats(vals)) + "</tr>" for name, vals in lines)
    return f'<table class="summary">{head}{body}</table>'


def distribution(rows: list[dict[str, Any]], group: str | None) -> str:
    """Histogram of the headline TuCo, one outline per group, with a colour key."""
    if group:
        groups = {f"{group}={g}": [row_value(r) for r in rows if str(r.get(group)) == g] for g in sorted({str(r.get(group)) for r in rows})}
    else:
        groups = {"all": [row_value(r) for r in rows]}
    groups = {k: [v for v in vals if v is not None] for k, vals in groups.items()}
    key = "".join(
        f'<span class="key"><span class="swatch" style="background:{GROUP_COLOURS[i % len(GROUP_COLOURS)]}"></span>{esc(k)} (n={len(v)})</span>'
        for i, (k, v) in enumerate(groups.items())
    )
    return histogram(groups) + f'<div class="keys">{key}</div>'


def profile(rows: list[dict[str, Any]]) -> str:
    """Mean per-layer ||PTC_l||_1 and ||FTC_l||_1 at the last token over the rows that have them."""
    ptc = [r["layer_ptc_l1"] for r in rows if isinstance(r.get("layer_ptc_l1"), list)]
    ftc = [r["layer_ftc_l1"] for r in rows if isinstance(r.get("layer_ftc_l1"), list)]
    if not ptc or not ftc:
        return '<p class="muted">No per-layer data in these rows.</p>'
    mean = lambda m: [statistics.fmean(col) for col in zip(*m)]  # noqa: E731
    key = ('<div class="keys"><span class="key"><span class="swatch" style="background:#1f77b4"></span>mean ||PTC_l||<sub>1</sub></span>'
           '<span class="key"><span class="swatch" style="background:#d62728"></span>mean ||FTC_l||<sub>1</sub></span></div>')
    return layer_profile({"PTC": mean(ptc), "FTC": mean(ftc)}) + key + '<p class="muted">x: layer index; y: L1 norm at the last prompt token.</p>'


def _columns(rows: list[dict[str, Any]], group: str | None) -> list[str]:
    cols = ["id"]
    if group and group != "alpha":
        cols.append(group)
    if "alpha" in (rows[0] if rows else {}):
        cols.append("alpha")
    for c in ("tuco", "preco", "prompt_tuco", "mean_tuco", "n_tokens", "n_new_tokens", "prompt", "response"):
        if any(c in r for r in rows):
            cols.append(c)
    return cols


def rows_table(rows: list[dict[str, Any]], group: str | None, anchor: str, with_tokens: set[int]) -> str:
    """The sortable, filterable table of rows (the first MAX_TABLE_ROWS)."""
    cols = _columns(rows, group)
    head = "".join(f'<th data-col="{i}" title="click to sort">{esc(c)}</th>' for i, c in enumerate(cols))
    body = []
    for i, r in enumerate(rows[:MAX_TABLE_ROWS]):
        cells = []
        for c in cols:
            v = r.get(c)
            text = _fmt(v) if c not in ("prompt", "response") else esc(str(v or "")[:300])
            sort = _num(v)
            sort_attr = f' data-v="{sort!r}"' if sort is not None else ""
            if c == "id" and i in with_tokens:
                text = f'<a href="#{anchor}-tok-{i}">{esc(v)}</a>'
            cells.append(f"<td{sort_attr}>{text}</td>")
        body.append(f'<tr data-group="{esc(r.get(group)) if group else ""}">{"".join(cells)}</tr>')
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f'<p class="muted">Showing the first {MAX_TABLE_ROWS} of {len(rows)} rows; all rows are in the run file.</p>'
    return (f'<div class="controls"><input class="filter" type="search" placeholder="filter rows…" aria-label="filter rows">'
            f'<span class="count"></span></div><table class="rows sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{note}')


def tokens_html(tokens: list[str], values: list[float] | None) -> str:
    """Tokens as spans coloured by per-token TuCo, the value in the hover title."""
    out = []
    for k, tok in enumerate(tokens):
        v = _num(values[k]) if values is not None and k < len(values) else None
        title = f"TuCo {v:.4f}" if v is not None else "no value"
        out.append(f'<span class="tok" style="background:{colour(v)};color:{text_colour(v)}" title="{esc(title)}"'
                   f' data-tuco="{"" if v is None else f"{v:.6f}"}">{esc(display_token(tok))}</span>')
    return "".join(out)


def token_view(row: dict[str, Any], index: int, anchor: str) -> str | None:
    """The coloured prompt and response of one row, or None when it has no per-token data."""
    parts = []
    if isinstance(row.get("prompt_tokens"), list):  # generation row with prompt per-token data
        parts.append(("prompt", tokens_html(row["prompt_tokens"], row.get("prompt_token_tuco"))))
    elif isinstance(row.get("tokens"), list) and "response" not in row:  # score row, --per-token
        parts.append(("prompt", tokens_html(row["tokens"], row.get("token_tuco"))))
    elif "response" in row:
        parts.append(("prompt", f'<span class="plain">{esc(row.get("prompt"))}</span>'))
    if "response" in row and isinstance(row.get("tokens"), list):
        parts.append(("response", tokens_html(row["tokens"], row.get("token_tuco"))))
    if not any("tok" in html for _, html in parts):
        return None
    meta = f'id {esc(row.get("id"))}'
    for key in ("alpha", "tuco", "prompt_tuco", "mean_tuco"):
        if key in row:
            meta += f" · {esc(key)} {_fmt(row[key])}"
    body = "".join(f'<div class="seg"><span class="seg-label">{label}</span><div class="toks">{h}</div></div>' for label, h in parts)
    mini = ""
    if isinstance(row.get("layer_ptc_l1"), list) and isinstance(row.get("layer_ftc_l1"), list):
        mini = '<details><summary>per-layer profile</summary>' + layer_profile({"PTC": row["layer_ptc_l1"], "FTC": row["layer_ftc_l1"]}, 480, 160) + "</details>"
    return f'<div class="tokview" id="{anchor}-tok-{index}"><div class="meta">{meta}</div>{body}{mini}</div>'


def legend() -> str:
    """The colour key of per-token TuCo."""
    return (f'<div class="legend"><span>0 (pre-training)</span><span class="bar" style="background:{legend_gradient()}"></span>'
            "<span>1 (fine-tuning)</span><span class=\"muted\">per-token TuCo; hover a token for its value</span></div>")


def file_section(f: RunFile, k: int) -> str:
    """Everything about one results file."""
    rows, anchor = f.rows, f"f{k}"
    group = group_of(rows)
    cfg = f.manifest.get("config", {})
    versions = f.manifest.get("versions", {})
    out = [f'<section class="file" id="{anchor}"><h2>{esc(f.name)}</h2>']
    if cfg or versions:
        status = f.manifest.get("status")
        out.append('<h3>Configuration</h3><div class="cols">' + _kv_table(cfg) + _kv_table(versions))
        out.append(_kv_table({"status": status, "created": f.manifest.get("created")}) + "</div>")
    if not rows:
        out.append('<p class="empty">This results file has no rows.</p></section>')
        return "".join(out)
    out.append("<h3>Summary</h3>" + summary_table(rows, group))
    out.append("<h3>TuCo distribution</h3>" + distribution(rows, group))
    out.append("<h3>Per-layer profile</h3>" + profile(rows))
    views, with_tokens = [], set()
    for i, r in enumerate(rows):
        if len(views) >= MAX_TOKEN_VIEWS:
            break
        v = token_view(r, i, anchor)
        if v is not None:
            views.append(v)
            with_tokens.add(i)
    out.append(f"<h3>Rows ({len(rows)})</h3>" + rows_table(rows, group, anchor, with_tokens))
    if views:
        out.append("<h3>Tokens coloured by TuCo</h3>" + legend() + "".join(views))
    out.append("</section>")
    return "".join(out)


def experiment_section(run: Run) -> str:
    """An experiment's metrics.json as a table and its PNG plots inlined."""
    if not run.metrics and not run.plots:
        return ""
    out = ['<section class="experiment"><h2>Experiment</h2>']
    if run.metrics:
        flat = {k: (v if not isinstance(v, (dict, list)) else json.dumps(v)) for k, v in run.metrics.items()}
        out.append("<h3>Metrics</h3>" + _kv_table(flat))
    for name, data in run.plots:
        b64 = base64.b64encode(data).decode("ascii")
        out.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{b64}"><figcaption>{esc(name)}</figcaption></figure>')
    out.append("</section>")
    return "".join(out)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:22px 0 8px}.muted{color:#777}.empty{color:#a00}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
table.kv th{background:#f6f6f6;font-weight:600}table.rows{width:100%;font-size:13px}table.rows th{cursor:pointer;background:#f6f6f6;user-select:none}
table.rows th.asc:after{content:" ▲"}table.rows th.desc:after{content:" ▼"}table.rows td{max-width:420px;overflow-wrap:anywhere}
.cols{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}.controls{margin:6px 0}.filter{padding:4px 8px;width:280px}
.count{margin-left:10px;color:#777}.keys{margin:4px 0}.key{margin-right:14px}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.legend{display:flex;gap:8px;align-items:center;margin:8px 0}.legend .bar{display:inline-block;width:220px;height:14px;border:1px solid #ccc}
.tokview{border:1px solid #e3e3e3;border-radius:6px;padding:8px 10px;margin:10px 0}.meta{color:#555;font-size:12px;margin-bottom:4px}
.seg{display:flex;gap:8px;margin:4px 0}.seg-label{flex:0 0 64px;color:#777;font-size:12px;padding-top:2px}
.toks{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;line-height:1.8}
.tok{border-radius:2px;padding:1px 0;box-shadow:inset -1px 0 rgba(0,0,0,.12)}.plain{white-space:pre-wrap}figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}
"""

# Static script: sorting and filtering on the rendered table. It never reads data into HTML.
JS = """
(function(){
  document.querySelectorAll('table.sortable').forEach(function(table){
    var tbody=table.tBodies[0];
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
      });
    });
    var section=table.closest('section'), input=section.querySelector('.filter'), count=section.querySelector('.count');
    function update(){
      var q=(input.value||'').toLowerCase(), shown=0;
      Array.prototype.forEach.call(tbody.rows,function(r){
        var ok=!q||r.textContent.toLowerCase().indexOf(q)>=0; r.style.display=ok?'':'none'; if(ok)shown++;
      });
      count.textContent=shown+' of '+tbody.rows.length+' rows';
    }
    input.addEventListener('input',update); update();
  });
  document.body.setAttribute('data-ready','1');
})();
"""


def build_html(run: Run, title: str | None = None) -> str:
    """The whole report page for a run, as one string."""
    title = title or f"tuco report — {run.source.name}"
    n_rows = sum(len(f.rows) for f in run.files)
    nav = "".join(f'<li><a href="#f{k}">{esc(f.name)}</a> ({len(f.rows)} rows)</li>' for k, f in enumerate(run.files))
    body = "".join(file_section(f, k) for k, f in enumerate(run.files)) + experiment_section(run)
    if not run.files and not run.metrics and not run.plots:
        body = '<p class="empty">This run has no results.</p>'
    # Only our own script may run (by hash): an injected <script> or on*= handler is refused even if
    # escaping ever failed. No network: default-src 'none'.
    script_hash = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="muted">source: {esc(run.source)} · {n_rows} rows · '
        "TuCo = ||Σ FTC||₁ / (||Σ PTC||₁ + ||Σ FTC||₁) at the last token</p>"
        f"<ul class=\"files\">{nav}</ul></header>{body}<script>{JS}</script></body></html>"
    )
