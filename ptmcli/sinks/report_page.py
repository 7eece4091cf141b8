"""The HTML of a report: one page, inline CSS and a few lines of vanilla JS, no external URL.

Every piece of text that comes from outside ptm (file names, URLs, labels, error messages,
the command line) goes through `esc`, so a file named `<img src=x onerror=alert(1)>.jpg` is shown
as those characters. Image sources are data: URIs or relative links that ptm made itself.
Torch-free.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from ptmcli.results import Classification


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Card:
    """One classified input: its thumbnail (a src, or None) and its result."""

    src: str | None
    result: Classification


@dataclass(frozen=True)
class Strip:
    """The sampled frames of one video, in order: one card each, shown as a strip."""

    cards: tuple[Card, ...]

    @property
    def path(self) -> str:
        return self.cards[0].result.path


def strips(cards: Sequence[Card]) -> list["Card | Strip"]:
    """Cards in order, the consecutive frames of each video together as one Strip."""
    out: list[Card | Strip] = []
    for card in cards:
        if card.result.time is None:
            out.append(card)
        elif out and isinstance(out[-1], Strip) and out[-1].path == card.result.path:
            out[-1] = Strip((*out[-1].cards, card))
        else:
            out.append(Strip((card,)))
    return out


@dataclass(frozen=True)
class Pair:
    """One zebrafied input: thumbnails of the input and the output, sizes, time, where it went."""

    path: str
    input_src: str
    output_src: str
    size: tuple[int, int]
    output: str
    seconds: float


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#fff;border-bottom:1px solid #ddd;padding:12px 20px}
h1{font-size:20px;margin:0 0 8px}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;font-size:13px}
dl.prov dt{color:#666}dl.prov dd{margin:0;word-break:break-all}
.status{font-weight:600}.status.partial{color:#b45309}
main{padding:16px 20px}
.controls{margin:0 0 12px}.controls input,.controls select{font:inherit;padding:3px 6px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0;padding:8px}
.card img,.pair img{max-width:100%;max-height:256px;display:block;margin:0 auto 6px;background:#eee}
.name{font-size:12px;color:#444;word-break:break-all;margin-bottom:4px}
ol.preds{list-style:none;margin:0;padding:0}
ol.preds li{position:relative;height:18px;margin:2px 0;font-size:12px;background:#f1f1f1}
ol.preds .bar{position:absolute;left:0;top:0;bottom:0;background:#93c5fd}
ol.preds .label{position:relative;padding-left:4px}
ol.preds .pct{position:absolute;right:4px;top:0}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top;word-break:break-all}
.strip{grid-column:1/-1}.strip .frames{display:flex;gap:8px;overflow-x:auto}
.strip .frame{flex:0 0 160px;font-size:12px}.strip .frame img{max-height:120px}
.strip .time{color:#666}
.pairs{display:flex;flex-direction:column;gap:12px}
.pair{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;margin:0}
.pair .sides{display:flex;gap:8px}.pair .sides div{flex:1;text-align:center;font-size:12px;color:#666}
"""

# Sort and filter the cards in place; without JavaScript the page still shows everything.
_SCRIPT = """
(function(){
var grid=document.getElementById('grid');if(!grid)return;
var cards=Array.prototype.slice.call(grid.children);
function apply(){
 var q=document.getElementById('filter').value.toLowerCase();
 var s=document.getElementById('sort').value;
 var shown=cards.slice();
 if(s==='confidence')shown.sort(function(a,b){return b.dataset.confidence-a.dataset.confidence;});
 if(s==='label')shown.sort(function(a,b){return a.dataset.label.localeCompare(b.dataset.label);});
 shown.forEach(function(c){c.hidden=q&&c.dataset.labels.toLowerCase().indexOf(q)<0;grid.appendChild(c);});
}
document.getElementById('filter').addEventListener('input',apply);
document.getElementById('sort').addEventListener('change',apply);
})();
"""


def _page(title: str, provenance: Sequence[tuple[str, str]], status: str, complete: bool, body: str,
          script: bool) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in provenance)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        # No request may leave the page: not even a favicon lookup.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: 'self'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<link rel=\"icon\" href=\"data:,\"><title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>"
        f"<header><h1>{esc(title)}</h1>"
        f"<p class=\"status{'' if complete else ' partial'}\" id=\"status\">{esc(status)}</p>"
        f"<dl class=\"prov\" id=\"provenance\">{rows}</dl></header>\n<main>{body}</main>"
        + (f"<script>{_SCRIPT}</script>" if script else "")
        + "</body></html>\n"
    )


def _failed_table(failed: Sequence[tuple[str, str]]) -> str:
    """(input, error) rows; the input's name is not repeated at the start of its reason."""
    if not failed:
        return ""
    rows = []
    for path, reason in failed:
        if reason.startswith(path + ": "):
            reason = reason[len(path) + 2:]
        rows.append(f"<tr><td>{esc(path)}</td><td>{esc(reason)}</td></tr>")
    return (f"<h2>Failed inputs ({len(failed)})</h2><table id=\"failed\"><tr><th>input</th><th>reason</th></tr>"
            + "".join(rows) + "</table>")


def _predictions(result: Classification) -> str:
    items = []
    for p in result.predictions:
        percent = 100.0 * p.probability
        items.append(f"<li><span class=\"bar\" style=\"width:{percent:.1f}%\"></span>"
                     f"<span class=\"label\">{esc(p.label)}</span><span class=\"pct\">{percent:.1f}%</span></li>")
    return f"<ol class=\"preds\">{''.join(items)}</ol>"


def _card(card: Card) -> str:
    r = card.result
    top = r.predictions[0] if r.predictions else None
    labels = " | ".join(p.label for p in r.predictions)
    image = f"<img src=\"{esc(card.src)}\" alt=\"\">" if card.src else ""
    return (f"<figure class=\"card\" data-label=\"{esc(top.label if top else '')}\" "
            f"data-confidence=\"{top.probability if top else 0:.6f}\" data-labels=\"{esc(labels)}\">"
            f"{image}<figcaption><div class=\"name\">{esc(r.path)}</div>{_predictions(r)}</figcaption></figure>")


def _strip(strip: Strip) -> str:
    """A video's sampled frames side by side, each with its time and predictions; it sorts by
    its most confident frame and is found by any frame's labels."""
    tops = [c.result.predictions[0] for c in strip.cards if c.result.predictions]
    best = max((p.probability for p in tops), default=0.0)
    labels = " | ".join(p.label for c in strip.cards for p in c.result.predictions)
    frames = []
    for card in strip.cards:
        image = f"<img src=\"{esc(card.src)}\" alt=\"\">" if card.src else ""
        frames.append(f"<div class=\"frame\">{image}<div class=\"time\">{card.result.time:.3f} s</div>"
                      f"{_predictions(card.result)}</div>")
    return (f"<figure class=\"card strip\" data-label=\"{esc(tops[0].label if tops else '')}\" "
            f"data-confidence=\"{best:.6f}\" data-labels=\"{esc(labels)}\"><figcaption><div class=\"name\">"
            f"{esc(strip.path)} ({len(strip.cards)} frames)</div></figcaption>"
            f"<div class=\"frames\">{''.join(frames)}</div></figure>")


def classify_page(title: str, provenance: Sequence[tuple[str, str]], status: str, complete: bool,
                  cards: Sequence["Card | Strip"], failed: Sequence[Classification]) -> str:
    parts = []
    if cards:
        parts.append(
            "<div class=\"controls\"><label>Filter by label <input id=\"filter\" type=\"search\"></label> "
            "<label>Sort <select id=\"sort\"><option value=\"input\">input order</option>"
            "<option value=\"confidence\">confidence</option><option value=\"label\">top label</option>"
            "</select></label></div><div class=\"grid\" id=\"grid\">")
        for card in cards:
            parts.append(_strip(card) if isinstance(card, Strip) else _card(card))
        parts.append("</div>")
    parts.append(_failed_table([(r.path if r.time is None else f"{r.path} at {r.time:.3f} s", r.error or "")
                                for r in failed]))
    return _page(title, provenance, status, complete, "".join(parts), script=bool(cards))


def zebrafy_page(title: str, provenance: Sequence[tuple[str, str]], status: str, complete: bool,
                 pairs: Sequence[Pair], failed: Sequence[tuple[str, str]]) -> str:
    parts = ["<div class=\"pairs\" id=\"pairs\">"]
    for pair in pairs:
        width, height = pair.size
        parts.append(
            f"<figure class=\"pair\"><div class=\"sides\"><div><img src=\"{esc(pair.input_src)}\" alt=\"\">input</div>"
            f"<div><img src=\"{esc(pair.output_src)}\" alt=\"\">output</div></div>"
            f"<figcaption><div class=\"name\">{esc(pair.path)} &rarr; {esc(pair.output)}</div>"
            f"{width}&times;{height} px, {pair.seconds:.2f} s</figcaption></figure>")
    parts.append("</div>")
    parts.append(_failed_table(failed))
    return _page(title, provenance, status, complete, "".join(parts), script=False)
