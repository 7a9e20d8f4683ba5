#!/usr/bin/env python3
"""Load the example workflows into the real ComfyUI web frontend (headless Chromium), compare the
prompt the frontend builds from each UI file (``app.graphToPrompt()``) with our API-format file, and
measure whether any two nodes overlap with the sizes the frontend gives them (title bars included).
Screenshots of the template browser (our category opened) and of every graph land in --out.

Run by ``run_live.py --frontend`` while its server is up, with ComfyUI's Python (it needs aiohttp):

    <comfy python> tests/comfyui_live/frontend_check.py --url http://127.0.0.1:18188 --out DIR

Needs a ``chromium`` binary (Debian: ``apt-get install chromium``). Prints one JSON report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def missing_model_offer(cdp: CDP) -> dict:
    """What the Missing Models dialog offers for the SAM file a template names when it is not on disk:
    the SAM template loaded with its model entry renamed to a file that is absent (the URL unchanged)."""
    name = next(n for n in NAMES if "SAM" in n and "SD" not in n)
    ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    loader = next(n for n in ui["nodes"] if n["type"] == "PHNetSAMLoader")
    entry = loader["properties"]["models"][0]
    absent = "phnet-live-absent-" + entry["name"]
    loader["properties"]["models"][0] = {**entry, "name": absent}
    loader["widgets_values"][0] = absent
    found = await cdp.js(
        "(async () => { await window.app.loadGraphData(" + json.dumps(ui) + ");"
        " await new Promise(r => setTimeout(r, 2000));"
        " const dialog = [...document.querySelectorAll('.p-dialog')].find(d => d.innerText.includes("
        + json.dumps(absent) + "));"
        " if (!dialog) return {listed: false};"
        " const row = [...dialog.querySelectorAll('*')].filter(e => e.innerText && e.innerText.includes("
        + json.dumps(absent) + ") && e.querySelector('button')).pop() || dialog;"
        " const buttons = [...row.querySelectorAll('button')].map(b => [b.innerText.trim(), b.disabled]);"
        " return {listed: true, buttons, text: row.innerText.slice(0, 400)}; })()")
    await cdp.js("document.querySelectorAll('.p-dialog-close-button, .p-dialog-header-close')"
                 ".forEach(b => b.click()); true")
    return {**found, "url": entry["url"]}


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
                # The first-run template browser is open: is our pack's category in it?
                report["template_browser_lists_pack"] = await cdp.js(
                    "document.body.innerText.toLowerCase().includes('comfyui-phnet')")
                import base64

                # open our category in the template browser: the cards show thumbnail, title, description
                await cdp.js("(() => { const el = [...document.querySelectorAll('*')].find(e => "
                             "e.children.length === 0 && e.textContent.trim() === 'comfyui-phnet');"
                             " if (el) el.click(); return !!el })()")
                await asyncio.sleep(2.0)
                shot = await cdp.call("Page.captureScreenshot", format="png")
                (out / "frontend_template_browser.png").write_bytes(base64.b64decode(shot["data"]))
                # a card shows the thumbnail (fetched as a blob), the file name as title and, dashes as
                # spaces, as its one-line description
                report["template_cards"] = await cdp.js(
                    "(() => { const text = document.body.innerText;"
                    " return " + json.dumps(NAMES) + ".filter(n => text.includes(n.replace(/[-_]/g, ' '))) })()")
                report["thumbnails_shown"] = await cdp.js(
                    "[...document.querySelectorAll('img')].filter(i => i.src.startsWith('blob:') && i.complete"
                    " && i.naturalWidth > 0).length")
                await cdp.js("document.querySelectorAll('.p-dialog-close-button, .p-dialog-header-close')"
                             ".forEach(b => b.click()); true")
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
                    frontend = {k: {"class_type": v["class_type"], "inputs": v["inputs"]}
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
                    await cdp.js("document.querySelectorAll('.p-dialog-close-button, .p-dialog-header-close')"
                                 ".forEach(b => b.click()); true")  # e.g. the Missing Models dialog
                    await asyncio.sleep(0.5)
                    shot = await cdp.call("Page.captureScreenshot", format="png")
                    png = out / f"frontend_{name}.png"
                    png.write_bytes(base64.b64decode(shot["data"]))
                    report["workflows"][name] = {
                        "same_prompt_as_api_file": not diffs,
                        "diffs": diffs,
                        "nodes_loaded": len(got["nodes"]),
                        "overlaps": overlaps({str(n["id"]): n["bounding"] for n in got["nodes"]}),
                        "bounds": {str(n["id"]): [round(v) for v in n["bounding"]] for n in got["nodes"]},
                        "console_errors": [json.dumps(e["params"])[:500] for e in errors],
                        "ignored_offline_errors": len(offline),
                        "screenshot": str(png),
                    }
                report["missing_sam_offer"] = await missing_model_offer(cdp)
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
