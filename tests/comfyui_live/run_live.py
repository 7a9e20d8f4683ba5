#!/usr/bin/env python3
"""Live check of the node pack in a real, headless ComfyUI (CPU). Not run by CI; run it by hand:

    python tests/comfyui_live/run_live.py --comfy /tmp/comfy --comfy-python /tmp/comfyvenv/bin/python [--frontend]
        [--front-end-root DIR]

Getting a real ComfyUI here: a checkout of Comfy-Org/ComfyUI (verified with 0.3.64) and a separate venv
with its requirements from PyPI (``pip install torch==2.14.1 torchvision==0.29.1``, then its
requirements.txt without the torch lines, plus ``requests``; other torch versions pull gigabytes).

What it does (under a fresh --base-directory with an EMPTY input folder; nothing is written into the
ComfyUI checkout):
 1. builds a tiny random SAM saved as models/sams/sam-vit-base.safetensors (the file the templates name;
    the real one is a 375 MB download), a tiny PHNet in models/phnet and one in a second 'phnet' folder
    given by an extra_model_paths.yaml (to see that registration is additive);
 2. starts ``main.py --cpu --listen 127.0.0.1`` with this repo symlinked as custom_nodes/comfyui-phnet;
 3. checks the import log (no IMPORT FAILED, the pack's import time), that the pack copied the
    templates' pictures into the empty input folder, /object_info (our 6 nodes, their inputs, the model
    lists), /workflow_templates (every template and its thumbnail served) and that every template's API
    form matches /object_info and its UI form;
 4. runs EVERY template as shipped through /prompt (bundled default PHNet, the shipped pictures): the
    ones without diffusion as they are; a template with a diffusion part is first validated whole (only
    the missing SD checkpoint may be reported), then run with its VAE Decode output replaced by a Load
    Image of the shipped background (the diffusion nodes are validated, not run);
 5. makes each mask mistake on a copy of the RGBA template (no InvertMask, a picture without alpha, a
    mask of another shape) and records the message the user is shown, runs it with fp16 on the CPU; then runs
    that template at strength 0.5, 0.51 and 0.5 again: only Harmonize runs again, on the cached mask,
    and the third result must be the first;
 6. checks that a missing model is refused with one message in the /prompt response, and presses Cancel while PHNet
    SAM Segment encodes with a full-size ViT-B (random weights): idle again within 2 s;
 7. builds the pip wheel of the repository and checks it holds the library but no ComfyUI pack (a
    top-level 'nodes' would shadow ComfyUI's nodes.py) and that the installed 'phnet' harmonizes;
 8. with --frontend, loads every template into the real web frontend (headless Chromium), compares
    the prompt it builds with our API file, measures node overlaps, checks the template browser's cards,
    that web/phnet_report.js draws a Harmonize node's report and what the Missing Models list offers for
    an absent SAM file, opens each template from its card in the template browser (where 1.58 ignores the
    saved view and fits the graph itself) and checks that the nodes' text is drawn at the zoom it opens at,
    and saves screenshots. --front-end-root serves another frontend build (the
    ``comfyui_frontend_package/static`` folder of an unpacked comfyui-frontend-package wheel) in place of
    the one ComfyUI's venv installs; checked with 1.27.10 and 1.58.1.
With --snapshot it also writes the /object_info entries of the core nodes our workflows use to
tests/nodes/data/core_object_info.json (used by the unit tests). Exit code 0 = all checks passed.
Needs torch + segment-anything in the Python running this script (the repo venv has them).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

OUR_NODES = ["PHNetModelLoader", "PHNetSAMLoader", "PHNetSAMSegment", "PHNetPasteSubject", "PHNetHarmonize",
             "PHNetHarmonizeFrames"]
WORKFLOWS = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
PICTURES = sorted(["phnet_background.png", "phnet_composite.png", "phnet_subject.png", "phnet_reference.png",
                   "phnet_frame_1.jpg", "phnet_frame_2.jpg", "phnet_frame_3.jpg", "phnet_frame_4.jpg",
                   "phnet_frames_mask.png"])
DIFFUSION = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode"}
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
TINY_PHNET = "tiny-phnet/model.safetensors"

report: dict = {"checks": [], "failures": []}


def free_port() -> int:
    """A TCP port nobody listens on now, for the headless browser's debugging port: two live checks at once
    would clash on a fixed one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(ok: bool, what: str) -> bool:
    (report["checks"] if ok else report["failures"]).append(what)
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    return ok


# ------------------------------------------------------------------------------------------ setup
def make_models(base: Path) -> None:
    import torch

    torch.set_num_threads(1)
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from tests.helpers.tiny_sam import save_tiny_sam

    cfg = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    torch.manual_seed(0)
    save_pretrained(PHNet(cfg).eval(), base / "models" / "phnet" / "tiny-phnet")
    save_pretrained(PHNet(cfg).eval(), base / "extra_phnet" / "extra-phnet")
    save_tiny_sam(base / "models" / "sams" / "sam-vit-base.safetensors")


def mistake_pictures(d: Path) -> None:
    """Pictures for the mask-mistake runs: the RGBA template picture saved as a JPG (no alpha), and an
    RGBA cut-out of another size."""
    from PIL import Image

    with Image.open(REPO / "examples" / "comfyui" / "phnet_composite.png") as im:
        im.convert("RGB").save(d / "phnet_live_no_alpha.jpg", quality=90)
        im.resize((200, 150)).save(d / "phnet_live_other_size.png")  # another shape (the same one is resized)


# ------------------------------------------------------------------------------------------ http
class Client:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, raw: bool = False):
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            data = r.read()
            return (r.status, data) if raw else json.loads(data)

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")  # /interrupt answers with an empty body
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


def wait_ready(client: Client, proc: subprocess.Popen, timeout: float) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            client.get("/system_stats")
            return True
        except Exception:
            time.sleep(1.0)
    return False


# ------------------------------------------------------------------------------------------ checks
def _inputs(info: dict) -> list[tuple[str, list]]:
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            out.append((name, info["input"][section][name]))
    return out


def _type(decl) -> str:
    t = decl[0]
    return "COMBO" if isinstance(t, list) else t


def _combo_options(decl):
    if isinstance(decl[0], list):
        return decl[0]
    if decl[0] == "COMBO" and len(decl) > 1:
        return decl[1].get("options")
    return None


def validate_api(prompt: dict, oi: dict, allowed_missing: set[tuple[str, str]] = frozenset()) -> list[str]:
    errs = []
    for nid, node in prompt.items():
        info = oi.get(node["class_type"])
        if info is None:
            errs.append(f"#{nid}: {node['class_type']} not in /object_info")
            continue
        decl = dict(_inputs(info))
        required = set(info["input"].get("required", {}))
        for name in required - set(node["inputs"]):
            errs.append(f"#{nid} {node['class_type']}: missing {name}")
        for name, v in node["inputs"].items():
            if name not in decl:
                errs.append(f"#{nid} {node['class_type']}: unknown input {name}")
                continue
            want = _type(decl[name])
            if isinstance(v, list):
                src = prompt[v[0]]
                got = oi[src["class_type"]]["output"][v[1]]
                if got not in want.split(",") and want != "*":
                    errs.append(f"#{nid} {node['class_type']}.{name}: {got} -> {want}")
            else:
                opts = _combo_options(decl[name])
                if opts is not None and v not in opts and (node["class_type"], name) not in allowed_missing:
                    errs.append(f"#{nid} {node['class_type']}.{name}: {v!r} not offered")
                elif want in ("INT", "FLOAT"):
                    o = decl[name][1] if len(decl[name]) > 1 else {}
                    if not (o.get("min", v) <= v <= o.get("max", v)):
                        errs.append(f"#{nid} {node['class_type']}.{name}: {v} out of range")
    return errs


def ui_to_api(ui: dict, oi: dict) -> dict:
    """Map UI widgets_values to input names with /object_info, like the frontend does."""
    links = {l[0]: l for l in ui["links"]}
    out = {}
    for n in ui["nodes"]:
        if n["type"] == "Note":
            continue
        info = oi[n["type"]]
        values = list(n.get("widgets_values", []))
        linked = {i["name"]: i["link"] for i in n.get("inputs", []) if i.get("link") is not None}
        inputs = {}
        upload = False
        for name, decl in _inputs(info):
            if name in linked:
                l = links[linked[name]]
                inputs[name] = [str(l[1]), l[2]]
            elif _type(decl) in WIDGETS:
                inputs[name] = values.pop(0)
                o = decl[1] if len(decl) > 1 else {}
                if o.get("control_after_generate"):
                    values.pop(0)
                upload = upload or bool(o.get("image_upload"))
        if upload:  # the upload button's value comes after the node's last widget
            values.pop(0)
        if values:
            inputs["__unused_widget_values__"] = values
        out[str(n["id"])] = {"class_type": n["type"], "inputs": inputs}
    return out


def run_prompt(client: Client, prompt: dict, timeout: float) -> tuple[dict | None, str]:
    status, body = client.post("/prompt", {"prompt": prompt, "client_id": "phnet-live"})
    if status != 200:
        return None, f"HTTP {status}: {json.dumps(body)[:2000]}"
    pid = body["prompt_id"]
    t0 = time.time()
    while time.time() - t0 < timeout:
        hist = client.get(f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            h = hist[pid]
            if h["status"].get("status_str") == "success":
                return h, "success"
            return h, "error: " + json.dumps(h["status"].get("messages"))[-3000:]
        time.sleep(1.0)
    return None, "timeout"


def _api(name: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())


def _size(name: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(REPO / "examples" / "comfyui" / name) as im:
        return im.size


def without_diffusion(prompt: dict) -> dict:
    """The template with its diffusion part cut off: VAE Decode's IMAGE becomes a Load Image of the
    shipped background (same node id, same output slot), the other diffusion nodes are dropped."""
    out = {}
    for nid, node in prompt.items():
        if node["class_type"] == "VAEDecode":
            out[nid] = {"class_type": "LoadImage", "inputs": {"image": "phnet_background.png"}}
        elif node["class_type"] not in DIFFUSION:
            out[nid] = node
    return out


def run_template(client: Client, name: str, oi: dict, results_dir: Path, timeout: float) -> None:
    prompt = _api(name)
    background = None
    if any(n["class_type"] in DIFFUSION for n in prompt.values()):
        status, body = client.post("/prompt", {"prompt": prompt, "client_id": "phnet-live"})
        errors = body.get("node_errors", {})
        kinds = sorted({(v["class_type"], e["type"], e.get("extra_info", {}).get("input_name"))
                        for v in errors.values() for e in v["errors"]})
        report.setdefault("diffusion_validation", {})[name] = {"http": status, "node_errors": kinds}
        only_ckpt = status == 200 or kinds == [("CheckpointLoaderSimple", "value_not_in_list", "ckpt_name")]
        check(only_ckpt, f"{name}: whole template validated: HTTP {status}, node errors {kinds} "
                         "(only the missing SD checkpoint is allowed)")
        if status == 200:  # an SD checkpoint is installed: don't wait for a CPU diffusion run
            client.post("/interrupt", {})
        prompt = without_diffusion(prompt)
        background = _size("phnet_background.png")
    t0 = time.time()
    hist, status = run_prompt(client, prompt, timeout)
    dt = round(time.time() - t0, 1)
    if not check(status == "success", f"{name}: ran as shipped{' (diffusion cut off)' if background else ''} "
                                      f"({status}, {dt} s)"):
        return
    saved = []
    from PIL import Image

    for out in hist["outputs"].values():
        for f in out.get("images", []):
            q = urllib.parse.urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
            code, data = client.get(f"/view?{q}", raw=True)
            target = results_dir / f"{name}__{f['type']}__{f['filename']}"
            target.write_bytes(data)
            with Image.open(target) as im:
                saved.append({"file": str(target), "type": f["type"], "size": im.size, "http": code})
    report.setdefault("runs", {})[name] = {"seconds": dt, "images": saved}
    first_load = next(n for n in prompt.values() if n["class_type"] == "LoadImage")["inputs"]["image"]
    want = background or _size(first_load)
    # a frames template saves every frame: as many as it loads pictures
    count = sum(n["class_type"] == "LoadImage" for n in prompt.values()) if any(
        n["class_type"] == "PHNetHarmonizeFrames" for n in prompt.values()) else 1
    outputs = [s["size"] for s in saved if s["type"] == "output"]
    check(outputs == [want] * count, f"{name}: saved {count} output image(s) of {want}: {outputs}")
    previews = [s for s in saved if s["type"] == "temp"]
    # the frames template previews the frames before; its save node shows them after
    wanted = count if count > 1 else 2 * count
    check(len(previews) == wanted, f"{name}: before | after preview ({len(previews)} images)")
    # every Harmonize node says what it did, and the text reaches the frontend with the node's output
    reports = [line for out in hist["outputs"].values() for line in out.get("text", [])]
    check(bool(reports) and all(r.startswith("PHNet Harmonize") for r in reports),
          f"{name}: the Harmonize report reaches the UI: {reports}")
    shown = [line for nid, out in hist["outputs"].items() if prompt.get(nid, {}).get("class_type") == "PreviewAny"
             for line in out.get("text", [])]
    check(len(shown) == 1 and shown[0] in reports, f"{name}: the template's Report node shows it: {shown}")
    report["runs"][name]["reports"] = reports


def _composite_prompt() -> tuple[dict, str, str]:
    name = next(n for n in WORKFLOWS if "composite" in n)
    prompt = _api(name)
    harmonize = next(k for k, v in prompt.items() if v["class_type"] == "PHNetHarmonize")
    load = next(k for k, v in prompt.items() if v["class_type"] == "LoadImage")
    return prompt, harmonize, load


def _error_message(client: Client, prompt: dict, timeout: float) -> str:
    status, body = client.post("/prompt", {"prompt": prompt, "client_id": "phnet-live"})
    if status != 200:
        return f"HTTP {status}: {json.dumps(body)[:500]}"
    pid = body["prompt_id"]
    t0 = time.time()
    while time.time() - t0 < timeout:
        h = client.get(f"/history/{pid}").get(pid)
        if h and h.get("status", {}).get("completed") is not None:
            for event, data in h["status"].get("messages", []):
                if event == "execution_error":
                    return f"{data['node_type']}: {data['exception_type']}: {data['exception_message']}"
            return "no error"
        time.sleep(0.5)
    return "timeout"


def mask_mistakes(client: Client, timeout: float) -> None:
    """Each mistake on a copy of the RGBA template; the message is what the frontend's error dialog shows."""
    import copy

    base, harmonize, load = _composite_prompt()
    cases = {}
    p = copy.deepcopy(base)
    p[harmonize]["inputs"]["mask"] = [load, 1]  # InvertMask left out
    cases["no InvertMask on an RGBA cut-out"] = (p, "InvertMask")
    p = copy.deepcopy(base)
    p[load]["inputs"]["image"] = "phnet_live_no_alpha.jpg"
    cases["a picture without alpha"] = (p, "no alpha channel")
    p = copy.deepcopy(base)
    p["900"] = {"class_type": "LoadImage", "inputs": {"image": "phnet_live_other_size.png"}}
    p["901"] = {"class_type": "InvertMask", "inputs": {"mask": ["900", 1]}}
    p[harmonize]["inputs"]["mask"] = ["901", 0]
    cases["a mask of another shape"] = (p, "another shape")
    for what, (prompt, expected) in cases.items():
        msg = _error_message(client, prompt, timeout)
        report.setdefault("mask_mistakes", {})[what] = msg
        check(expected in msg, f"{what}: the user reads {msg!r}")
    p = copy.deepcopy(base)  # slower than fp32 there: run all the same, as the library and the phnet command run it
    loader = next(k for k, v in p.items() if v["class_type"] == "PHNetModelLoader")
    p[loader]["inputs"]["dtype"] = "fp16"
    _, status = run_prompt(client, p, timeout)
    check(status == "success", f"fp16 on the CPU runs ({status})")


def _output_pixels(client: Client, hist: dict) -> list[bytes]:
    from PIL import Image

    pixels = []
    for out in hist["outputs"].values():
        for f in out.get("images", []):
            if f["type"] == "output":
                q = urllib.parse.urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
                _, data = client.get(f"/view?{q}", raw=True)
                with Image.open(io.BytesIO(data)) as im:
                    pixels.append(im.tobytes())
    return pixels


def cached_inputs_stay(client: Client, timeout: float) -> None:
    """ComfyUI hands a node the cached outputs of the nodes before it. Strength 0.5, then 0.51 (only the
    Harmonize node runs again), then 0.5: the last result must be the first, with the same cached mask."""
    base, harmonize, _ = _composite_prompt()
    results = []
    for strength in (0.5, 0.51, 0.5):
        prompt = json.loads(json.dumps(base))
        prompt[harmonize]["inputs"].update(strength=strength, threshold=0.0)
        hist, status = run_prompt(client, prompt, timeout)
        if not check(status == "success", f"cached inputs: the composite template at strength {strength} ({status})"):
            return
        results.append(_output_pixels(client, hist))
    check(results[0] == results[2] and results[0] != results[1] and results[0],
          "a Harmonize run leaves the cached mask it was given as it was: strength 0.5 again gives the first result")


def cancel_latency(client: Client, base: Path, log_path: Path, timeout: float) -> None:
    """Cancel pressed while PHNet SAM Segment encodes with a full-size ViT-B (random weights, the real
    architecture and cost): the server must be idle again within 2 s on this CPU."""
    import torch
    from safetensors.torch import save_file
    from segment_anything import sam_model_registry

    name = "sam_vit_b_random.safetensors"
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in sam_model_registry["vit_b"]().state_dict().items()}
    save_file(state, str(base / "models" / "sams" / name))
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "phnet_subject.png"}},
        "2": {"class_type": "PHNetSAMLoader", "inputs": {"model_name": name, "hub_repo_id": "", "hub_filename": "",
                                                         "model_type": "auto", "device": "cpu"}},
        "3": {"class_type": "PHNetSAMSegment", "inputs": {"sam_model": ["2", 0], "image": ["1", 0],
                                                          "box": "60,20,260,300",
                                                          "positive_points": "", "negative_points": "",
                                                          "multimask": False, "threshold": 0.0, "grow": 0,
                                                          "feather": 0.0}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    seen = len(log_path.read_text())
    status, body = client.post("/prompt", {"prompt": prompt, "client_id": "phnet-live"})
    if not check(status == 200, f"cancel check: the SAM prompt is queued (HTTP {status})"):
        return
    t0 = time.time()
    while "loaded SAM" not in log_path.read_text()[seen:] and time.time() - t0 < timeout:
        time.sleep(0.2)
    time.sleep(3.0)  # well into the encode (tens of seconds for a ViT-B on this CPU)
    pressed = time.time()
    client.post("/interrupt", {})
    while client.get("/queue")["queue_running"] and time.time() - pressed < 120:
        time.sleep(0.05)
    latency = time.time() - pressed
    hist = client.get(f"/history/{body['prompt_id']}").get(body["prompt_id"], {})
    interrupted = any(m[0] == "execution_interrupted" for m in hist.get("status", {}).get("messages", []))
    report["cancel_seconds"] = round(latency, 2)
    check(interrupted and latency <= 2.0, f"Cancel during PHNet SAM Segment: idle after {latency:.2f} s "
                                          f"(interrupted: {interrupted})")


def reported_once(client: Client) -> None:
    prompt, _, _ = _composite_prompt()
    loader = next(k for k, v in prompt.items() if v["class_type"] == "PHNetModelLoader")
    prompt[loader]["inputs"]["model_name"] = "gone.safetensors"
    status, body = client.post("/prompt", {"prompt": prompt, "client_id": "phnet-live"})
    errors = body.get("node_errors", {}).get(loader, {}).get("errors", [])
    report["missing_model_errors"] = errors
    # ComfyUI repeats a VALIDATE_INPUTS refusal for each input the check reads: model_name and hub_repo_id (which
    # makes model_name unused when set), one message
    messages = {e.get("details", "").split(" - ", 1)[-1] for e in errors}
    inputs = sorted(e.get("details", "").split(" - ", 1)[0] for e in errors)
    check(status == 400 and len(messages) == 1 and inputs == ["hub_repo_id", "model_name"],
          f"a missing model is refused before the run, with one message: HTTP {status}, "
          f"{[e.get('details') for e in errors]}")


def pip_package(work: Path) -> None:
    """The same folder as a pip package: the wheel has the library and the trainer, not the node pack."""
    import zipfile

    src = work / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "build", "*.egg-info"),
                    symlinks=True)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(work / "wheel")], capture_output=True, text=True, timeout=600)
    wheels = list((work / "wheel").glob("*.whl"))
    if not check(r.returncode == 0 and len(wheels) == 1, f"pip wheel builds {[w.name for w in wheels]} "
                                                         f"{r.stderr[-500:] if r.returncode else ''}"):
        return
    tops = sorted({n.split("/")[0] for n in zipfile.ZipFile(wheels[0]).namelist()} - {""})
    report["wheel_top_level"] = tops
    check("phnet" in tops and "nodes" not in tops and "__init__.py" not in tops,
          f"the wheel holds {tops}: the library, no node pack")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheels[0])],
                   capture_output=True, text=True, timeout=600)
    code = ("import numpy as np, phnet; from phnet import Harmonizer; h = Harmonizer.from_pretrained(device='cpu');"
            "m = np.zeros((64, 64), 'float32'); m[16:48, 16:48] = 1;"
            "print(phnet.__file__, h(np.random.rand(64, 64, 3).astype('float32'), m).shape)")
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0 and r.stdout.startswith(str(target)) and "(64, 64, 3)" in r.stdout,
          f"the installed phnet harmonizes: {r.stdout.strip() or r.stderr[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfy", default=os.environ.get("COMFYUI_PATH", "/tmp/comfy"),
                    help="ComfyUI checkout (default: $COMFYUI_PATH, else /tmp/comfy)")
    ap.add_argument("--comfy-python", default="/tmp/comfyvenv/bin/python",
                    help="Python of ComfyUI's venv (default: /tmp/comfyvenv/bin/python)")
    ap.add_argument("--port", type=int, default=18188, help="port ComfyUI listens on, on 127.0.0.1 (default 18188)")
    ap.add_argument("--base", default=None, help="base directory to use (default: a new temp dir)")
    ap.add_argument("--snapshot", action="store_true", help="write tests/nodes/data/core_object_info.json")
    ap.add_argument("--keep", action="store_true", help="keep the base directory")
    ap.add_argument("--timeout", type=float, default=600, help="seconds ComfyUI may take to start (default 600)")
    ap.add_argument("--frontend", action="store_true",
                    help="also load the UI workflows in the real web frontend (headless chromium) and compare "
                         "the prompt it builds with our API files")
    ap.add_argument("--front-end-root", default=None,
                    help="serve this web frontend build instead of the one ComfyUI's venv installs (a folder "
                         "holding index.html, e.g. comfyui_frontend_package/static of an unpacked wheel)")
    args = ap.parse_args()
    if not (Path(args.comfy) / "main.py").is_file():
        ap.error(f"--comfy {args.comfy} is no ComfyUI checkout (no main.py there)")
    if not Path(args.comfy_python).is_file():
        ap.error(f"--comfy-python {args.comfy_python} does not exist: give the Python of ComfyUI's venv")
    if args.front_end_root and not (Path(args.front_end_root) / "index.html").is_file():
        ap.error(f"--front-end-root {args.front_end_root} holds no index.html: give a frontend build's static folder")

    base = Path(args.base or tempfile.mkdtemp(prefix="phnet-live-"))
    for sub in ("custom_nodes", "models", "input", "output"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "comfyui-phnet"
    if not link.exists():
        os.symlink(REPO, link)
    make_models(base)
    check(not any((base / "input").iterdir()), "the input folder starts empty")
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"phnet_live:\n    base_path: {base}\n    phnet: extra_phnet\n")
    log_path = base / "comfyui.log"
    cmd = [args.comfy_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(args.port),
           "--disable-auto-launch", "--base-directory", str(base), "--extra-model-paths-config", str(yaml),
           "--database-url", "sqlite:///:memory:"]
    if args.front_end_root:
        cmd += ["--front-end-root", str(Path(args.front_end_root).resolve())]
    print("starting:", " ".join(cmd), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=args.comfy, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    client = Client(args.port)
    try:
        t0 = time.time()
        ready = wait_ready(client, proc, args.timeout)
        report["startup_seconds"] = round(time.time() - t0, 1)
        if not check(ready, f"ComfyUI started and answers HTTP ({report['startup_seconds']} s)"):
            print(log_path.read_text()[-5000:])
            return 1
        stats = client.get("/system_stats")
        report["comfyui_version"] = stats.get("system", {}).get("comfyui_version")
        report["python"] = stats.get("system", {}).get("python_version")
        report["web_root"] = next((l.split("web root:", 1)[1].strip() for l in log_path.read_text().splitlines()
                                   if "web root:" in l), None)
        print("ComfyUI", report["comfyui_version"], flush=True)
        text = log_path.read_text()
        import_lines = [l.strip() for l in text.splitlines() if "comfyui-phnet" in l]
        report["import_log"] = import_lines
        check(not any("IMPORT FAILED" in l or "Cannot import" in l for l in import_lines),
              "pack imported without IMPORT FAILED / Cannot import")
        check("Adding extra search path phnet" in text, "extra_model_paths.yaml 'phnet' path applied before packs")
        timing = [l for l in import_lines if "seconds" in l]
        report["pack_import_time"] = timing
        check(bool(timing), f"pack import time: {timing}")
        present = sorted(p.name for p in (base / "input").iterdir())  # nothing else: Load Image (as Mask) lists all
        marked = (base / "user" / "comfyui-phnet" / "template-pictures.json").is_file()  # copied once, not again
        same = all((base / "input" / f).read_bytes() == (REPO / "examples" / "comfyui" / f).read_bytes()
                   for f in PICTURES if f in present)
        report["input_folder_after_start"] = present
        check(present == PICTURES and same and marked,
              f"the pack copied the template pictures into the empty input folder: {present}")
        mistake_pictures(base / "input")

        oi = client.get("/object_info")
        from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location("phnet_live_build", REPO / "workflows" / "build.py")
        build = module_from_spec(spec)
        sys.modules[spec.name] = build
        spec.loader.exec_module(build)
        pack = build.load_pack()
        for node_id in OUR_NODES:
            info = oi.get(node_id)
            if not check(info is not None, f"/object_info lists {node_id}"):
                continue
            cls = pack.NODE_CLASS_MAPPINGS[node_id]
            mine = [(n, s) for s in ("required", "optional") for n in cls.INPUT_TYPES().get(s, {})]
            theirs = [(n, s) for s in ("required", "optional") for n in info.get("input_order", {}).get(s, [])]
            check(mine == theirs, f"{node_id}: input names/order match ({[n for n, _ in theirs]})")
            check(list(info["output"]) == list(cls.RETURN_TYPES), f"{node_id}: outputs {info['output']}")
            check(info["python_module"].startswith("custom_nodes."),
                  f"{node_id}: python_module {info['python_module']}")
            report.setdefault("object_info", {})[node_id] = {
                "display_name": info["display_name"], "category": info["category"], "output": info["output"],
                "output_name": info["output_name"], "python_module": info["python_module"]}
        phnet_list = oi["PHNetModelLoader"]["input"]["required"]["model_name"][0]
        sam_list = oi["PHNetSAMLoader"]["input"]["required"]["model_name"][0]
        report["phnet_model_list"], report["sam_model_list"] = phnet_list, sam_list
        check(phnet_list[0] == "default (bundled)" and TINY_PHNET in phnet_list
              and "extra-phnet/model.safetensors" in phnet_list,
              f"PHNet model list = {phnet_list} (default first, models/phnet + YAML path)")
        check("sam-vit-base.safetensors" in sam_list, f"SAM model list = {sam_list}")

        folders = client.get("/models")
        check("phnet" in folders and "sams" in folders, "/models lists the 'phnet' and 'sams' folders")
        check(TINY_PHNET in client.get("/models/phnet"), "/models/phnet lists the tiny model")

        templates = client.get("/workflow_templates")
        report["workflow_templates"] = templates
        ours = sorted(templates.get("comfyui-phnet", []))
        check(ours == sorted(WORKFLOWS), f"/workflow_templates offers {ours}")
        for name in WORKFLOWS:
            for ext in ("json", "jpg"):
                status, _ = client.get(f"/api/workflow_templates/comfyui-phnet/{urllib.parse.quote(name)}.{ext}",
                                       raw=True)
                check(status == 200, f"template file {name}.{ext} served ({status})")

        used_core = set()
        for name in WORKFLOWS:
            api = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
            ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
            used_core |= {n["class_type"] for n in api.values() if n["class_type"] not in OUR_NODES}
            allowed = {("CheckpointLoaderSimple", "ckpt_name")}
            errs = validate_api(api, oi, allowed)
            check(not errs, f"{name}: API form valid against /object_info {errs if errs else ''}")
            conv = ui_to_api(ui, oi)
            stripped = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
            check(conv == stripped, f"{name}: UI form (widgets mapped by /object_info) == API form")
        if args.snapshot:
            keep = ("input", "input_order", "output", "output_name", "output_is_list", "output_node", "name")
            snap = {k: {f: oi[k][f] for f in keep if f in oi[k]} for k in sorted(used_core)}
            for k in snap:  # file lists depend on the machine
                for sec in snap[k]["input"].values():
                    for n, d in sec.items():
                        if isinstance(d, list) and d and isinstance(d[0], list) and n in ("image", "ckpt_name"):
                            d[0] = []
            out = REPO / "tests" / "nodes" / "data" / "core_object_info.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"comfyui_version": report.get("comfyui_version"), "nodes": snap},
                                      indent=1, sort_keys=True) + "\n")
            print("wrote", out)

        results_dir = base / "results"
        results_dir.mkdir(exist_ok=True)
        if args.frontend:
            r = subprocess.run([args.comfy_python, str(Path(__file__).with_name("frontend_check.py")),
                                "--url", client.base + "/", "--out", str(results_dir),
                                "--cdp-port", str(free_port())],
                               capture_output=True, text=True, timeout=args.timeout)
            try:
                fe = json.loads(r.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                fe = {"error": (r.stdout + r.stderr)[-3000:]}
            report["frontend"] = fe
            if "skipped" in fe:
                print("frontend check skipped:", fe["skipped"])
            elif check(fe.get("frontend_ready", False), f"web frontend {fe.get('frontend_version')} loaded"):
                check(fe.get("template_browser_lists_pack", False), "template browser shows a comfyui-phnet category")
                cards = fe.get("template_cards") or {}
                check(sorted(cards) == WORKFLOWS and all(c["thumbnail"] for c in cards.values()),
                      f"template browser: a card with thumbnail and the file name as title for {sorted(cards)} "
                      f"({fe.get('thumbnails_shown')} thumbnails shown)")
                # frontends up to 1.2x show the name, dashes as spaces, as the card's description too; later
                # ones show no description on a card, only the title on one line and the whole name on hover
                described = sorted(n for n, c in cards.items() if c["description"])
                cut = sorted(n for n, c in cards.items() if c["cut"])
                check(bool(cards) and all(c["description"] or (c["title_only_card"] and c["hover"])
                                          for c in cards.values()),
                      f"template browser: every card shows the whole name, as its description {described} "
                      f"or, on a card with a title only, on hover (title cut short on the card: {cut})")
                rules = fe.get("link_rules") or {}
                check(rules == {"sam_model_into_segment": True, "phnet_sam_into_segment": True,
                                "phnet_sam_into_impact": False},
                      f"frontend link rules for the SAM socket: {rules}")
                for name, w in fe.get("workflows", {}).items():
                    check(w["same_prompt_as_api_file"],
                          f"{name}: frontend graphToPrompt() of the UI file == our API file {w['diffs'] or ''}"
                          f"{' (it also sends inputs ComfyUI ignores: ' if w['undeclared_inputs_sent'] else ''}"
                          f"{w['undeclared_inputs_sent'] or ''}{')' if w['undeclared_inputs_sent'] else ''}")
                    check(not w["console_errors"], f"{name}: no frontend errors while loading {w['console_errors']}")
                    check(not w["overlaps"], f"{name}: no two nodes overlap in the frontend {w['overlaps'] or ''}")
                    cut = {k: f"{t['title']!r} {t['width']} px in {t['font']}, room {t['room']} px, "
                              f"drawn {t['drawn']!r}" for k, t in w.get("titles_cut", {}).items()}
                    check("titles" in w and not cut, f"{name}: every node's title fits the room the frontend gives it "
                          f"(its width less 60 px) {cut or ''}")
                    if w.get("titles_hidden_at_open"):  # measured, not held: how far to pan depends on the frontend
                        print(f"NOTE {name}: node title bars off screen or under the frontend's menus where the "
                              f"graph opens: {w['titles_hidden_at_open']}", flush=True)
                        report.setdefault("notes", []).append(f"{name}: titles hidden at open")
                # Opened from the template browser, as most users open a template: 1.27 keeps the file's saved
                # view, 1.58 fits the graph into 0.75 of the window itself; either way the nodes' text must show
                opened = fe.get("from_template_browser") or {}
                check(sorted(opened) == WORKFLOWS and all(o.get("card_found") and o["loaded"] for o in opened.values()),
                      f"every template opens from its card in the template browser {sorted(opened)}")
                for name, o in sorted(opened.items()):
                    if o.get("loaded"):
                        check(o["text_drawn"],
                              f"{name}: opened from the template browser at zoom {o['zoom']} (saved view "
                              f"{'kept' if o['saved_view_kept'] else 'ignored'}), node text drawn "
                              f"(from zoom {o['text_zoom']})")
                        check(not o.get("titles_cut", {}), f"{name}: opened from the template browser, no node's "
                              f"title is cut short {o.get('titles_cut') or ''}")
                shown = fe.get("report_extension", {})
                lines = shown.get("drawn", [])
                check(shown.get("loaded") and len(lines) > 1 and " ".join(lines) == shown.get("line")
                      and shown["height_after"] > shown["height_before"],
                      f"web/phnet_report.js draws a Harmonize node's report inside it, the node grown from "
                      f"{shown.get('height_before')} to {shown.get('height_after')} px: {lines[:3]}")
                check(shown.get("line", "?") in shown.get("preview", ""),
                      f"the template's Preview Any node shows the report: {shown.get('preview', '')!r}")
                check(not fe.get("extension_messages"),
                      f"no console warning or error from the pack's web extension {fe.get('extension_messages') or ''}")
                offer = fe.get("missing_sam_offer", {})
                download = [enabled for label, disabled in offer.get("buttons", [])
                            for enabled in [not disabled] if "download" in label.lower()]
                check(offer.get("listed") and download and all(download) and offer["url"].endswith(".safetensors"),
                      f"the Missing Models list offers the SAM file with Download enabled: {offer}")
        for name in WORKFLOWS:
            run_template(client, name, oi, results_dir, args.timeout)
        mask_mistakes(client, args.timeout)
        cached_inputs_stay(client, args.timeout)
        cancel_latency(client, base, log_path, args.timeout)
        reported_once(client)
        pip_package(base / "pip")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except ProcessLookupError:  # ComfyUI had already ended (its failed start is in the log above)
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    report["base"] = str(base)
    report["log"] = str(log_path)
    (base / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\n{len(report['checks'])} passed, {len(report['failures'])} failed")
    print("report:", base / "report.json")
    if not args.keep and not report["failures"]:
        shutil.rmtree(base / "models", ignore_errors=True)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
