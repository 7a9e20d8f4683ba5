#!/usr/bin/env python3
"""Load the example workflows into the real ComfyUI web frontend (headless Chromium), compare the
prompt the frontend builds from each UI file (``app.graphToPrompt()``) with our API-format file, and
measure whether any two nodes overlap with the sizes the frontend gives them (title bars included) and
whether it cuts a node's title short (measured as the frontend measures it, against the room it gives), and
open each template from its card in the template browser to record the zoom it opens at and whether the
nodes' text is drawn there. Screenshots of the template browser (our category opened) and of every graph land
in --out.

Run by ``run_live.py --frontend`` while its server is up, with ComfyUI's Python (it needs aiohttp):

    <comfy python> tests/comfyui_live/frontend_check.py --url http://127.0.0.1:18188 --out DIR

Needs a ``chromium`` binary (Debian: ``apt-get install chromium``). Prints one JSON report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))


def overlaps(bounds: dict[str, list[float]]) -> list[str]:
    """Pairs of nodes whose on-canvas boxes ([x, y, w, h], title bar included) intersect."""
    out = []
    ids = sorted(bounds, key=int)
    for i, a in enumerate(ids):
        ax, ay, aw, ah = bounds[a]
        for b in ids[i + 1:]:
            bx, by, bw, bh = bounds[b]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                out.append(f"{a}/{b}")
    return out


def declared(object_info: dict, class_type: str) -> set[str]:
    """The inputs /object_info declares for a node class (required and optional)."""
    spec = object_info.get(class_type, {}).get("input", {})
    return set(spec.get("required", {})) | set(spec.get("optional", {}))


class CDP:
    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def call(self, method, timeout=60, **params):
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
        res = await asyncio.wait_for(fut, timeout)
        if "error" in res:
            raise RuntimeError(f"{method}: {res['error']}")
        return res["result"]

    async def js(self, expr, timeout=60):
        r = await self.call("Runtime.evaluate", timeout=timeout, expression=expr, awaitPromise=True,
                            returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(json.dumps(r["exceptionDetails"])[:2000])
        return r["result"].get("value")

# a line of the kind a Harmonize node reports, long enough to wrap inside the node
REPORT_LINE = "PHNet Harmonize: unchanged: the correction (RMS 13.3 of 255) is below the threshold 17"
EXTENSION_FILE = "/extensions/comfyui-phnet/phnet_report.js"


def _frames(event: dict) -> list[str]:
    params = event.get("params", {})
    trace = params.get("stackTrace") or params.get("exceptionDetails", {}).get("stackTrace") or {}
    urls = [f.get("url", "") for f in trace.get("callFrames", [])]
    return urls + [params.get("exceptionDetails", {}).get("url", "")]


def extension_messages(events: list[dict]) -> list[str]:
    """Console warnings and errors (deprecation warnings included) and exceptions raised in our extension's
    file, or naming the pack: the frontend's own ones are not ours to fix."""
    out = []
    for e in events:
        kind = e.get("method")
        if kind == "Runtime.consoleAPICalled" and e["params"].get("type") not in ("warning", "error"):
            continue
        if kind not in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
            continue
        text = json.dumps(e["params"])
        if any(EXTENSION_FILE in url for url in _frames(e)) or "comfyui-phnet" in text:
            out.append(text[:500])
    return out


async def report_extension(cdp: CDP, out: Path) -> dict:
    """web/phnet_report.js in this frontend: the message a Harmonize node's run sends ({"text": [line]}) is
    handed to the frontend's API as its websocket hands it, to the Harmonize node and to the template's
    Preview Any node. What the extension draws inside the node is recorded (the fillText calls made from
    the node's onDrawForeground, in the last frame drawn), with the node's height before and after."""
    name = next(n for n in NAMES if "composite" in n)
    ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    found = await cdp.js(
        "(async () => { const sleep = t => new Promise(r => setTimeout(r, t));"
        " if (window.LiteGraph && 'alwaysRepeatWarnings' in window.LiteGraph)"
        " window.LiteGraph.alwaysRepeatWarnings = true;"  # a deprecation already warned of is warned of again
        " await window.app.loadGraphData(" + json.dumps(ui) + "); await sleep(1000);"
        " const api = window.comfyAPI.api.api, nodes = window.app.graph._nodes;"
        " const node = nodes.find(n => n.type === 'PHNetHarmonize');"
        " const preview = nodes.find(n => n.type === 'PreviewAny');"
        " const before = node.size[1], drawn = [], proto = CanvasRenderingContext2D.prototype, fill = proto.fillText;"
        " const own = Object.prototype.hasOwnProperty.call(node, 'onDrawForeground'), draw = node.onDrawForeground;"
        " let inside = false;"
        " node.onDrawForeground = function (...a) { inside = true; drawn.length = 0;"
        " try { return draw?.apply(this, a) } finally { inside = false } };"
        " proto.fillText = function (t, ...a) { if (inside) drawn.push(String(t)); return fill.call(this, t, ...a) };"
        " try { for (const n of [node, preview]) api.dispatchCustomEvent('executed', {node: String(n.id),"
        " display_node: String(n.id), output: {text: [" + json.dumps(REPORT_LINE) + "]}, prompt_id: 'phnet-live'});"
        " await sleep(500); window.app.canvas.draw(true, true); await sleep(500); window.app.canvas.draw(true, true);"
        " } finally { proto.fillText = fill; if (own) node.onDrawForeground = draw; else delete node.onDrawForeground }"
        " return {loaded: (window.app.extensions || []).some(e => e.name === 'comfyui-phnet.report'),"
        " drawn, height_before: before, height_after: node.size[1],"
        " preview: (preview.widgets || []).map(w => String(w.value ?? '')).join('\\n')} })()", timeout=120)
    shot = await cdp.call("Page.captureScreenshot", format="png")
    png = out / "frontend_report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    return {**found, "line": REPORT_LINE, "screenshot": str(png)}


async def close_dialogs(cdp: CDP) -> None:
    """Close what is open over the graph: PrimeVue's dialogs (frontends up to 1.2x), a later one's notice
    of missing models, and (Escape) its template browser."""
    await cdp.js("document.querySelectorAll('.p-dialog-close-button, .p-dialog-header-close,"
                 " [data-testid=\"error-overlay-dismiss\"]').forEach(b => b.click()); true")
    for kind in ("keyDown", "keyUp"):
        await cdp.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)


async def missing_model_offer(cdp: CDP, out: Path) -> dict:
    """What the Missing Models list offers for the SAM file a template names when it is not on disk:
    the SAM template loaded with its model entry renamed to a file that is absent (the URL unchanged)."""
    name = next(n for n in NAMES if "SAM" in n and "SD" not in n)
    ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    loader = next(n for n in ui["nodes"] if n["type"] == "PHNetSAMLoader")
    entry = loader["properties"]["models"][0]
    absent = "phnet-live-absent-" + entry["name"]
    loader["properties"]["models"][0] = {**entry, "name": absent}
    loader["widgets_values"][0] = absent
    # Frontends up to 1.2x list missing models in a dialog; later ones raise a notice whose "View details"
    # opens the side panel's list of missing models.
    found = await cdp.js(
        "(async () => { await window.app.loadGraphData(" + json.dumps(ui) + ");"
        " await new Promise(r => setTimeout(r, 2000));"
        " const notice = document.querySelector('[data-testid=\"error-overlay-see-errors\"]');"
        " if (notice) { notice.click(); await new Promise(r => setTimeout(r, 1500)); }"
        " const holder = [...document.querySelectorAll('.p-dialog')].find(d => d.innerText.includes("
        + json.dumps(absent) + ")) || (notice && document.body);"
        " if (!holder) return {listed: false};"
        " const rows = [...holder.querySelectorAll('*')].filter(e => e.innerText && e.innerText.includes("
        + json.dumps(absent) + ") && e.querySelector('button'));"
        " const label = b => b.innerText.trim() || b.getAttribute('aria-label') || '';"
        " const row = rows.filter(e => [...e.querySelectorAll('button')].some(b => /download/i.test(label(b))))"
        ".pop() || rows.pop();"
        " if (!row) return {listed: false, where: notice ? 'side panel' : 'dialog'};"
        " const buttons = [...row.querySelectorAll('button')].map(b => [label(b), b.disabled]);"
        " return {listed: true, where: notice ? 'side panel' : 'dialog', buttons,"
        " text: row.innerText.slice(0, 400)}; })()")
    shot = await cdp.call("Page.captureScreenshot", format="png")
    png = out / "frontend_missing_models.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    await close_dialogs(cdp)
    return {**found, "url": entry["url"], "screenshot": str(png)}


# The zoom below which the canvas draws nodes without their text, as the frontend computes it: its setting
# "minimum font size for detail" over the 14 px node text, corrected for the device pixel ratio (litegraph's
# LGraphCanvas keeps the result in _lowQualityZoomThreshold; the formula is the fallback for a build without it).
TEXT_ZOOM_JS = (
    "(() => { const c = window.app.canvas, lg = window.LiteGraph || {};"
    " if (typeof c._lowQualityZoomThreshold === 'number') return c._lowQualityZoomThreshold;"
    " const min = c.min_font_size_for_lod ?? 8;"
    " return min / ((lg.NODE_TEXT_SIZE || 14) * Math.sqrt(window.devicePixelRatio || 1)) })()")


# Each node's title as the frontend draws it (litegraph's LGraphNode.drawTitleText): measured with the canvas's
# measureText in the node's titleFontStyle (14 px Arial in 1.27, 14 px Inter, its own web font, in 1.58) against
# the room it gives, the node's width less a title bar's height on each side (the dot's 30 px on the left, as much
# kept on the right) and less its title buttons, if any; a longer title is cut with "...". The font is set in
# canvas units, so neither the width nor the room depends on the zoom. The text the frontend actually drew in a
# frame is recorded too (null where the frame drew no title text, e.g. below the zoom for text).
TITLES_JS = (
    "(async () => { const c = window.app.canvas, lg = window.LiteGraph || {}, th = lg.NODE_TITLE_HEIGHT ?? 30;"
    " const nodes = window.app.graph._nodes, ctx = c.canvas.getContext('2d'), out = {};"
    " const fontOf = n => n.titleFontStyle ?? `${lg.NODE_TEXT_SIZE ?? 14}px ${lg.NODE_FONT ?? 'Arial'}`;"
    " for (const f of new Set(nodes.map(fontOf))) await document.fonts.load(f);"
    " const drawn = {}, proto = CanvasRenderingContext2D.prototype, fill = proto.fillText; let inside = null;"
    " const saved = nodes.map(n => [n, Object.prototype.hasOwnProperty.call(n, 'drawTitleText'), n.drawTitleText]);"
    " for (const [n, , draw] of saved) n.drawTitleText = function (...a) { inside = n.id;"
    " try { return draw.apply(this, a) } finally { inside = null } };"
    " proto.fillText = function (t, ...a) { if (inside !== null && !(inside in drawn)) drawn[inside] = String(t);"
    " return fill.call(this, t, ...a) };"
    " try { c.draw(true, true) } finally { proto.fillText = fill;"
    " for (const [n, own, draw] of saved) { if (own) n.drawTitleText = draw; else delete n.drawTitleText } }"
    " ctx.save(); try { for (const n of nodes) {"
    " const title = String(n.getTitle?.() ?? n.title ?? '') + (n.pinned ? '\\u{1F4CC}' : '');"
    " let buttons = 0; for (const b of n.title_buttons || []) if (b.visible) buttons += b.getWidth(ctx) + 2;"
    " ctx.font = fontOf(n);"
    " const room = (n.renderingSize ?? n.size)[0] - 2 * th - buttons, width = ctx.measureText(title).width;"
    " out[n.id] = {title, font: ctx.font, width: Math.round(width * 10) / 10, room, buttons,"
    " drawn: drawn[n.id] ?? null, cut: width > room || (n.id in drawn && drawn[n.id] !== title)} }"
    " } finally { ctx.restore() } return out })()")


def cut_titles(titles: dict) -> dict:
    """The nodes (by id) whose title the frontend cuts: wider than its room, or drawn other than it is."""
    return {k: v for k, v in titles.items() if v["cut"]}


async def click(cdp: CDP, x: float, y: float) -> None:
    """A left click at page point (x, y), as the mouse makes it."""
    await cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    for kind in ("mousePressed", "mouseReleased"):
        await cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


async def opened_from_template_browser(cdp: CDP, out: Path) -> dict:
    """Each template opened the way a user opens it: the template browser (its command), our category, a click
    on the template's card. Records the zoom it opens at, whether it is the file's saved view (extra.ds; 1.27
    keeps it, 1.58 fits the graph itself) and whether the canvas draws the nodes' text there (the zoom at or
    above the frontend's own threshold, and its low_quality flag off). A screenshot of each lands in --out."""
    found = {}
    for name in NAMES:
        saved = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
        await cdp.js("(async () => { await window.app.extensionManager.command.execute('Comfy.BrowseTemplates');"
                     " await new Promise(r => setTimeout(r, 2000));"
                     " const el = [...document.querySelectorAll('*')].find(e => e.children.length === 0"
                     " && e.textContent.trim() === 'comfyui-phnet'); if (el) el.click();"
                     " await new Promise(r => setTimeout(r, 1500)); return true })()")
        card = await cdp.js(
            "(() => { const card = document.querySelector('[data-testid=\"template-workflow-' + "
            + json.dumps(name) + " + '\"]'); if (!card) return null;"
            " card.scrollIntoView({block: 'center'});"
            " const title = [...card.querySelectorAll('*')].find(e => e.children.length === 0"
            " && e.textContent.trim() === " + json.dumps(name) + ") || card;"
            " const r = title.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2] })()")
        if card is None:
            found[name] = {"card_found": False}
            await close_dialogs(cdp)
            continue
        await asyncio.sleep(0.5)
        await click(cdp, *card)
        # loaded when the browser has closed and the graph holds the template's nodes; then the camera is
        # placed on a later frame
        loaded = await cdp.js(
            "(async () => { for (let i = 0; i < 60; i++) { await new Promise(r => setTimeout(r, 250));"
            " if (!document.querySelector('[data-testid^=\"template-workflow-\"]')"
            " && window.app.graph._nodes.length === " + str(len(saved["nodes"])) + ") return true } return false })()")
        await asyncio.sleep(1.5)
        view = await cdp.js(
            "(() => { const c = window.app.canvas; c.draw(true, true);"
            " return {scale: c.ds.scale, offset: [...c.ds.offset], low_quality: !!c.low_quality,"
            " text_zoom: " + TEXT_ZOOM_JS + ", device_pixel_ratio: window.devicePixelRatio || 1} })()")
        await close_dialogs(cdp)  # the notice or dialog of a model the template names and the server lacks
        await asyncio.sleep(1.0)
        titles = await cdp.js(TITLES_JS)
        shot = await cdp.call("Page.captureScreenshot", format="png")
        png = out / f"frontend_browser_{name}.png"
        png.write_bytes(base64.b64decode(shot["data"]))
        ds = saved["extra"]["ds"]
        found[name] = {
            "card_found": True, "loaded": loaded, "zoom": round(view["scale"], 4), "saved_zoom": ds["scale"],
            "saved_view_kept": abs(view["scale"] - ds["scale"]) < 0.005
            and all(abs(a - b) < 1 for a, b in zip(view["offset"], ds["offset"])),
            "text_zoom": round(view["text_zoom"], 4), "low_quality": view["low_quality"],
            "device_pixel_ratio": view["device_pixel_ratio"],
            "text_drawn": view["scale"] >= view["text_zoom"] and not view["low_quality"],
            "titles_cut": cut_titles(titles),
            "screenshot": str(png),
        }
    return found


async def run(url: str, out: Path, cdp_port: int) -> dict:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        return {"skipped": "no chromium binary"}
    profile = tempfile.mkdtemp(prefix="phnet-chromium-")
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                             f"--remote-debugging-port={cdp_port}", f"--user-data-dir={profile}",
                             "--window-size=1920,1080", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    report: dict = {"workflows": {}}
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{cdp_port}/json/list") as r:
                        pages = [p for p in await r.json() if p["type"] == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.3)
            async with http.get(url.rstrip("/") + "/object_info") as r:
                object_info = await r.json()
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = CDP(ws)
                await cdp.call("Runtime.enable")
                await cdp.call("Page.enable")
                await cdp.call("Page.navigate", url=url)
                ready = False
                for _ in range(240):
                    await asyncio.sleep(0.5)
                    try:
                        ready = await cdp.js("!!(window.app && window.app.graph && window.app.canvas)")
                    except RuntimeError:
                        ready = False
                    if ready:
                        break
                report["frontend_ready"] = bool(ready)
                if not ready:
                    return report
                await asyncio.sleep(2.0)
                report["frontend_version"] = await cdp.js("window.__COMFYUI_FRONTEND_VERSION__ || null")
                # The first-run template browser is open: is our pack's category in it? (A base directory
                # whose user settings say the first run is over shows none: it is opened by its command.)
                report["template_browser_lists_pack"] = await cdp.js(
                    "document.body.innerText.toLowerCase().includes('comfyui-phnet')")
                report["template_browser_opened_by"] = "first run"
                if not report["template_browser_lists_pack"]:
                    report["template_browser_opened_by"] = "command"
                    report["template_browser_lists_pack"] = await cdp.js(
                        "(async () => { await window.app.extensionManager.command.execute('Comfy.BrowseTemplates');"
                        " await new Promise(r => setTimeout(r, 2000));"
                        " return document.body.innerText.toLowerCase().includes('comfyui-phnet') })()")
                # open our category in the template browser: the cards show thumbnail, title, description
                await cdp.js("(() => { const el = [...document.querySelectorAll('*')].find(e => "
                             "e.children.length === 0 && e.textContent.trim() === 'comfyui-phnet');"
                             " if (el) el.click(); return !!el })()")
                await asyncio.sleep(2.0)
                shot = await cdp.call("Page.captureScreenshot", format="png")
                (out / "frontend_template_browser.png").write_bytes(base64.b64decode(shot["data"]))
                # a card shows the thumbnail (fetched as a blob) and the file name as title; frontends up
                # to 1.2x also show it, dashes as spaces, as a one-line description, later ones show the
                # title on one line, cut short, with the whole name on hover (its title attribute); their
                # cards are the ones marked data-testid="template-workflow-<name>"
                report["template_cards"] = await cdp.js(
                    "(() => { const out = {}; for (const n of " + json.dumps(NAMES) + ") {"
                    " const title = [...document.querySelectorAll('body *')].find(e => e.children.length === 0"
                    " && e.textContent.trim() === n); if (!title) continue;"
                    " let card = title; while (card.parentElement && !card.querySelector('img'))"
                    " card = card.parentElement;"
                    " const img = card.querySelector('img');"
                    " out[n] = {description: card.innerText.includes(n.replace(/[-_]/g, ' ')),"
                    " hover: title.getAttribute('title') === n,"
                    " title_only_card: !!title.closest('[data-testid^=\"template-workflow-\"]'),"
                    " thumbnail: !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0,"
                    " cut: title.scrollHeight > title.clientHeight + 1 || title.scrollWidth > title.clientWidth + 1}"
                    " } return out })()")
                report["thumbnails_shown"] = await cdp.js(
                    "[...document.querySelectorAll('img')].filter(i => i.src.startsWith('blob:') && i.complete"
                    " && i.naturalWidth > 0).length")
                await close_dialogs(cdp)
                await asyncio.sleep(1.0)
                # the link rule the frontend applies to our SAM socket: other packs' SAM_MODEL may feed
                # PHNet SAM Segment, our PHNET_SAM may not feed their SAM_MODEL inputs
                report["link_rules"] = await cdp.js(
                    "(() => { const ok = (a, b) => window.LiteGraph.isValidConnection(a, b);"
                    " return {sam_model_into_segment: ok('SAM_MODEL', 'PHNET_SAM,SAM_MODEL'),"
                    " phnet_sam_into_segment: ok('PHNET_SAM', 'PHNET_SAM,SAM_MODEL'),"
                    " phnet_sam_into_impact: ok('PHNET_SAM', 'SAM_MODEL')} })()")
                await cdp.js("(async () => { try { await window.app.extensionManager.setting.set("
                             "'Comfy.Minimap.Visible', false) } catch (e) {} return true })()")
                for name in NAMES:
                    ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
                    api = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
                    n_events = len(cdp.events)
                    value = await cdp.js(
                        "(async () => { await window.app.loadGraphData(" + json.dumps(ui) + ");"
                        " await new Promise(r => setTimeout(r, 1000));"
                        " const p = await window.app.graphToPrompt();"
                        " const nodes = window.app.graph._nodes.map(n => ({id: n.id, type: n.type,"
                        "   widgets: (n.widgets || []).map(w => [w.name, w.value]),"
                        "   inputs: (n.inputs || []).map(i => [i.name, i.type, i.link]),"
                        "   bounding: [n.pos[0], n.pos[1] - (window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30), n.size[0],"
                        "              n.size[1] + (window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30)]}));"
                        " return JSON.stringify({output: p.output, nodes}); })()", timeout=120)
                    got = json.loads(value)
                    # ComfyUI ignores an input its node does not declare; frontend 1.27 sends Preview Any's
                    # display widget ("preview": "") as one, later frontends do not
                    extra = {k: sorted(set(v["inputs"]) - declared(object_info, v["class_type"]))
                             for k, v in got["output"].items()}
                    frontend = {k: {"class_type": v["class_type"],
                                    "inputs": {i: x for i, x in v["inputs"].items() if i not in extra[k]}}
                                for k, v in got["output"].items()}
                    ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
                    diffs = []
                    for k in sorted(set(frontend) | set(ours), key=int):
                        if frontend.get(k) != ours.get(k):
                            diffs.append({"node": k, "frontend": frontend.get(k), "ours": ours.get(k)})
                    errors = [e for e in cdp.events[n_events:]
                              if e.get("method") == "Runtime.exceptionThrown"
                              or (e.get("method") == "Runtime.consoleAPICalled"
                                  and e["params"].get("type") == "error")]
                    # This machine is offline: the Missing Models dialog cannot ask huggingface.co for the
                    # size of the (absent) SD checkpoint. That is not a problem of the workflow.
                    offline = [e for e in errors if "Error fetching file size" in json.dumps(e)]
                    errors = [e for e in errors if e not in offline]
                    await asyncio.sleep(1.0)
                    await close_dialogs(cdp)  # e.g. the Missing Models dialog or notice
                    await asyncio.sleep(0.5)
                    # where the graph opens (its saved zoom and offset): a node whose title bar has a corner
                    # off screen or under the frontend's own menus and toolbars
                    hidden_titles = await cdp.js(
                        "(() => { const c = window.app.canvas, r = c.canvas.getBoundingClientRect(), ds = c.ds;"
                        " const th = window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30, out = {};"
                        " for (const n of window.app.graph._nodes) {"
                        " const top = n.pos[1] - th + 4;"
                        " const corners = [[n.pos[0] + 4, top], [n.pos[0] + n.size[0] - 4, top]];"
                        " const over = corners.map(([x, y]) => document.elementFromPoint("
                        " r.left + (x + ds.offset[0]) * ds.scale, r.top + (y + ds.offset[1]) * ds.scale))"
                        " .filter(e => e !== c.canvas).map(e => e ? e.getAttribute('data-testid')"
                        " || e.getAttribute('aria-label') || e.classList[0] || e.tagName : 'off screen');"
                        " if (over.length) out[n.id] = over } return out })()")
                    titles = await cdp.js(TITLES_JS)
                    shot = await cdp.call("Page.captureScreenshot", format="png")
                    png = out / f"frontend_{name}.png"
                    png.write_bytes(base64.b64decode(shot["data"]))
                    report["workflows"][name] = {
                        "same_prompt_as_api_file": not diffs,
                        "diffs": diffs,
                        "undeclared_inputs_sent": {k: v for k, v in extra.items() if v},
                        "nodes_loaded": len(got["nodes"]),
                        "overlaps": overlaps({str(n["id"]): n["bounding"] for n in got["nodes"]}),
                        "titles_hidden_at_open": hidden_titles,
                        "titles": titles,
                        "titles_cut": cut_titles(titles),
                        "bounds": {str(n["id"]): [round(v) for v in n["bounding"]] for n in got["nodes"]},
                        "console_errors": [json.dumps(e["params"])[:500] for e in errors],
                        "ignored_offline_errors": len(offline),
                        "screenshot": str(png),
                    }
                report["from_template_browser"] = await opened_from_template_browser(cdp, out)
                report["report_extension"] = await report_extension(cdp, out)
                report["missing_sam_offer"] = await missing_model_offer(cdp, out)
                report["extension_messages"] = extension_messages(cdp.events)
                cdp.reader.cancel()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
    return report


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:18188/")
    ap.add_argument("--out", default=".")
    ap.add_argument("--cdp-port", type=int, default=19333)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(args.url, out, args.cdp_port))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
