"""The page ``harness view`` writes: one HTML file with its data, style and script inline.

The data travels as JSON inside ``<script type="application/json">`` with every ``<`` escaped,
so no completion can close the element; the script reads it with ``JSON.parse`` and writes
every string with ``textContent`` (never ``innerHTML``), so no completion becomes markup.
The page asks for nothing over the network, which also keeps it working from a file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
#filters { display: flex; flex-wrap: wrap; gap: 0.6em 1.2em; align-items: center; margin-bottom: 0.8em;
           position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; }
#filters label.off { color: #999; }
table { border-collapse: collapse; width: 100%; font-size: 13px; table-layout: fixed; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.verdict { display: inline-block; border-radius: 3px; padding: 0 4px; font-size: 12px; margin-bottom: 3px; }
.full_compliance { background: #e3f4e3; } .full_refusal { background: #fbe0e0; }
.partial_refusal { background: #fff0cc; } .unparsed, .not_judged { background: #eee; }
.judges { color: #666; font-size: 11px; } .flip { background: #fffbe6; }
details summary { cursor: pointer; color: #8a4b00; }
#more { margin: 1em 0; }
"""

SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("view-data").textContent);
const PAGE = 200;
const harmful = new Set(DATA.benchmarks.filter(b => b.harmful).map(b => b.name));
const $ = id => document.getElementById(id);
let shown = PAGE;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function option(select, value, text) { const o = el("option", text); o.value = value; select.appendChild(o); }
function outcome(label) {
  return label === null || label === undefined || label === "not_judged" ? null : label === "full_compliance";
}
function disagrees(r) {
  if (!r) return false;
  const labels = new Set(Object.values(r.j));
  return Object.keys(r.j).length > 1 && labels.size > 1;
}
function flipped(item) {
  const outs = item.r.filter(r => r && outcome(r.v) !== null).map(r => outcome(r.v));
  return item.r.length > 1 && item.r.every(r => r) && new Set(outs).size > 1;
}
function mismatched(item) {
  const want = item.e === "refuse" ? false : item.e === "comply" ? true : null;
  return want !== null && item.r.some(r => r && outcome(r.v) !== null && outcome(r.v) !== want);
}
for (const b of DATA.benchmarks) option($("f-bench"), b.name, `${b.name} (${b.kind.replace("_", "-")})`);
for (const [v, t] of [["full_compliance", "full compliance"], ["partial_refusal", "partial refusal"],
                      ["full_refusal", "full refusal"], ["unparsed", "unparsed"],
                      ["mismatch", "not the expected behaviour"]]) option($("f-verdict"), v, t);
const multiJudge = DATA.runs.some(r => r.judges.length > 1);
if (!multiJudge) {
  $("f-disagree").disabled = true;
  $("l-disagree").className = "off";
  $("l-disagree").title = "each run holds one judge's verdicts";
}
if (DATA.runs.length < 2) {
  $("f-flips").disabled = true;
  $("l-flips").className = "off";
  $("l-flips").title = "give two run directories to see flips";
}

function matches(item) {
  const bench = $("f-bench").value, verdict = $("f-verdict").value, q = $("f-search").value.toLowerCase();
  if (bench && item.b !== bench) return false;
  if (verdict === "mismatch" && !mismatched(item)) return false;
  if (verdict && verdict !== "mismatch" &&
      !item.r.some(r => r && (r.v === null ? "unparsed" : r.v) === verdict)) return false;
  if ($("f-disagree").checked && !item.r.some(disagrees)) return false;
  if ($("f-flips").checked && !flipped(item)) return false;
  if (q && !item.p.toLowerCase().includes(q) && !item.r.some(r => r && r.c.toLowerCase().includes(q))) return false;
  return true;
}

function completionCell(item, r) {
  const td = el("td", null, "text");
  if (!r) { td.textContent = "—"; return td; }
  const v = r.v === null ? "unparsed" : r.v;
  td.appendChild(el("span", v.replaceAll("_", " "), "verdict " + v));
  const judged = Object.entries(r.j);
  if (judged.length > 1) {
    td.appendChild(el("div", judged.map(([j, l]) => `${j}: ${l === null ? "unparsed" : l}`).join(" · "), "judges"));
  }
  if (harmful.has(item.b)) {
    const d = el("details", null, "harmful");
    d.appendChild(el("summary", "completion to a harmful prompt (click to show)"));
    d.appendChild(el("div", r.c, "completion"));
    td.appendChild(d);
  } else {
    td.appendChild(el("div", r.c, "completion"));
  }
  return td;
}

function render() {
  const body = $("rows");
  body.replaceChildren();
  const hits = DATA.items.filter(matches);
  for (const item of hits.slice(0, shown)) {
    const tr = el("tr", null, flipped(item) ? "flip" : "");
    tr.dataset.bench = item.b;
    tr.appendChild(el("td", item.b));
    tr.appendChild(el("td", item.id));
    tr.appendChild(el("td", item.e));
    tr.appendChild(el("td", item.p, "text prompt"));
    item.r.forEach(r => tr.appendChild(completionCell(item, r)));
    body.appendChild(tr);
  }
  const n = Math.min(shown, hits.length);
  $("count").textContent = `${n} shown of ${hits.length} matching (${DATA.items.length} prompts)`;
  $("more").hidden = hits.length <= shown;
}

const head = $("head");
for (const t of ["benchmark", "id", "expected", "prompt"]) head.appendChild(el("th", t));
for (const r of DATA.runs) {
  const th = el("th", r.label);
  th.title = r.path + " · judge " + r.judge;
  head.appendChild(th);
}
for (const id of ["f-bench", "f-verdict", "f-disagree", "f-flips", "f-search"]) {
  $(id).addEventListener("input", () => { shown = PAGE; render(); });
}
$("more").addEventListener("click", () => { shown += PAGE; render(); });
render();
"""

BODY = """<h1>Prompts, completions and verdicts</h1>
<div id="filters">
<label>benchmark <select id="f-bench"><option value="">all</option></select></label>
<label>verdict <select id="f-verdict"><option value="">any</option></select></label>
<label id="l-disagree"><input type="checkbox" id="f-disagree"> judges disagree</label>
<label id="l-flips"><input type="checkbox" id="f-flips"> flips between runs</label>
<label>search <input type="search" id="f-search"></label>
<span id="count"></span>
</div>
<table><colgroup><col style="width:9em"><col style="width:7em"><col style="width:5em"><col></colgroup>
<thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table>
<button id="more" hidden>show more</button>
<noscript>This page needs JavaScript to show its prompts.</noscript>"""


def to_json(data: Mapping[str, Any]) -> str:
    """JSON safe inside a ``<script>`` element: ``<`` (and so ``</script>``, ``<!--``) escaped."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def page_html(data: Mapping[str, Any]) -> str:
    """The whole document for ``data`` (``view.page_data``)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>harness view</title>"
        f"<style>{STYLE}</style></head><body>\n{BODY}\n"
        f'<script type="application/json" id="view-data">{to_json(data)}</script>\n'
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def serve_page(html: str, port: int = 0) -> None:
    """Serve ``html`` at ``http://127.0.0.1:PORT/`` until interrupted (loopback only: the page
    holds the runs' completions, which are nobody else's business)."""
    body = html.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # printed even under --quiet: without the address the server is of no use
    print(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
