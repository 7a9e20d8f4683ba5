#!/usr/bin/env python3
"""Live check of the node pack in a real, headless ComfyUI (CPU). Not run by CI; run it by hand:

    python tests/comfyui_live/run_live.py --comfy /tmp/comfy --comfy-python /tmp/comfyvenv/bin/python

What it does (everything under a fresh --base-directory, nothing is written into the ComfyUI checkout):
 1. builds a tiny random PHNet (models/phnet/tiny-phnet/) and a tiny random SAM saved as
    models/sams/sam_vit_b_01ec64.pth (the file name the example workflows use), input pictures, and an
    extra_model_paths.yaml that adds a second 'phnet' folder (to see that registration is additive);
 2. starts ``main.py --cpu --listen 127.0.0.1`` with this repo symlinked as custom_nodes/comfyui-phnet;
 3. checks the import log (no IMPORT FAILED), /object_info (our 5 nodes, their inputs, the model lists),
    /workflow_templates (our example workflows are offered) and that every example workflow matches
    /object_info (node types, input names, link types, widget positions of the UI form);
 4. POSTs the harmonize-composite and paste-and-harmonize API workflows to /prompt (PHNet Model Loader
    switched to the tiny model unless --use-default), waits for /history and downloads the saved images;
 5. POSTs generate-and-harmonize: with no SD checkpoint installed the only accepted error is the missing
    ckpt_name; everything else must validate.
With --snapshot it also writes the /object_info entries of the core nodes our workflows use to
tests/nodes/data/core_object_info.json (used by the unit tests). Exit code 0 = all checks passed.
Needs torch + segment-anything in the Python running this script (the repo venv has them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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

OUR_NODES = ["PHNetModelLoader", "PHNetSAMLoader", "PHNetSAMSegment", "PHNetPasteSubject", "PHNetHarmonize"]
WORKFLOWS = ["phnet-harmonize-composite", "phnet-paste-and-harmonize", "phnet-generate-and-harmonize"]
RUNNABLE = WORKFLOWS[:2]
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
TINY_PHNET = "tiny-phnet/model.safetensors"

report: dict = {"checks": [], "failures": []}


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
    save_tiny_sam(base / "models" / "sams" / "sam_vit_b_01ec64.pth")


def make_inputs(d: Path) -> None:
    import numpy as np
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:320, 0:384] / 320.0
    bg = np.stack([0.25 + 0.5 * xx, 0.35 + 0.35 * yy, 0.75 - 0.35 * xx], -1)  # cool, bluish scene
    Image.fromarray((bg * 255).astype(np.uint8)).save(d / "phnet_background.png")
    sy, sx = np.mgrid[0:256, 0:256]
    person = ((sx - 128) / 80.0) ** 2 + ((sy - 140) / 110.0) ** 2 < 1
    sub = np.where(person[..., None], [0.95, 0.7, 0.5], [0.1, 0.5, 0.2]) + 0.02 * rng.random((256, 256, 3))
    Image.fromarray((sub.clip(0, 1) * 255).astype(np.uint8)).save(d / "phnet_subject.png")
    comp = bg.copy()
    comp[40:296, 64:320][person] = sub[person]
    alpha = np.zeros((320, 384), np.uint8)
    alpha[40:296, 64:320][person] = 255
    Image.fromarray(np.dstack([(comp.clip(0, 1) * 255).astype(np.uint8), alpha]), "RGBA").save(
        d / "phnet_composite.png")


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
                return r.status, json.loads(r.read())
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
                if got != want:
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
        for name, decl in _inputs(info):
            if name in linked:
                l = links[linked[name]]
                inputs[name] = [str(l[1]), l[2]]
            elif _type(decl) in WIDGETS:
                inputs[name] = values.pop(0)
                o = decl[1] if len(decl) > 1 else {}
                if o.get("control_after_generate") or o.get("image_upload"):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy", default=os.environ.get("COMFYUI_PATH", "/tmp/comfy"), help="ComfyUI checkout")
    ap.add_argument("--comfy-python", default="/tmp/comfyvenv/bin/python", help="Python of ComfyUI's venv")
    ap.add_argument("--port", type=int, default=18188)
    ap.add_argument("--base", default=None, help="base directory to use (default: a new temp dir)")
    ap.add_argument("--use-default", action="store_true", help="run with the bundled default PHNet")
    ap.add_argument("--snapshot", action="store_true", help="write tests/nodes/data/core_object_info.json")
    ap.add_argument("--keep", action="store_true", help="keep the base directory")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--thumbnails", action="store_true",
                    help="with --frontend: refresh example_workflows/<name>.jpg from the frontend screenshots")
    ap.add_argument("--frontend", action="store_true",
                    help="also load the UI workflows in the real web frontend (headless chromium) and compare "
                         "the prompt it builds with our API files")
    args = ap.parse_args()

    base = Path(args.base or tempfile.mkdtemp(prefix="phnet-live-"))
    for sub in ("custom_nodes", "models", "input", "output"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "comfyui-phnet"
    if not link.exists():
        os.symlink(REPO, link)
    make_models(base)
    make_inputs(base / "input")
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"phnet_live:\n    base_path: {base}\n    phnet: extra_phnet\n")
    log_path = base / "comfyui.log"
    cmd = [args.comfy_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(args.port),
           "--disable-auto-launch", "--base-directory", str(base), "--extra-model-paths-config", str(yaml),
           "--database-url", "sqlite:///:memory:"]
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
        print("ComfyUI", report["comfyui_version"], flush=True)
        text = log_path.read_text()
        import_lines = [l.strip() for l in text.splitlines() if "comfyui-phnet" in l]
        report["import_log"] = import_lines
        check(not any("IMPORT FAILED" in l or "Cannot import" in l for l in import_lines),
              "pack imported without IMPORT FAILED / Cannot import")
        check("Adding extra search path phnet" in text, "extra_model_paths.yaml 'phnet' path applied before packs")

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
            check(info["python_module"].startswith("custom_nodes."), f"{node_id}: python_module {info['python_module']}")
            report.setdefault("object_info", {})[node_id] = {
                "display_name": info["display_name"], "category": info["category"], "output": info["output"],
                "output_name": info["output_name"], "python_module": info["python_module"]}
        phnet_list = oi["PHNetModelLoader"]["input"]["required"]["model_name"][0]
        sam_list = oi["PHNetSAMLoader"]["input"]["required"]["model_name"][0]
        report["phnet_model_list"], report["sam_model_list"] = phnet_list, sam_list
        check(phnet_list[0] == "default (bundled)" and TINY_PHNET in phnet_list
              and "extra-phnet/model.safetensors" in phnet_list,
              f"PHNet model list = {phnet_list} (default first, models/phnet + YAML path)")
        check("sam_vit_b_01ec64.pth" in sam_list, f"SAM model list = {sam_list}")

        folders = client.get("/models")
        check("phnet" in folders and "sams" in folders, "/models lists the 'phnet' and 'sams' folders")
        check(TINY_PHNET in client.get("/models/phnet"), "/models/phnet lists the tiny model")

        templates = client.get("/workflow_templates")
        report["workflow_templates"] = templates
        ours = sorted(templates.get("comfyui-phnet", []))
        check(ours == sorted(WORKFLOWS), f"/workflow_templates offers {ours}")
        for name in WORKFLOWS:
            status, _ = client.get(f"/api/workflow_templates/comfyui-phnet/{name}.json", raw=True)
            check(status == 200, f"template file {name}.json served ({status})")

        used_core = set()
        for name in WORKFLOWS:
            api = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
            ui = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
            used_core |= {n["class_type"] for n in api.values() if n["class_type"] not in OUR_NODES}
            allowed = {("CheckpointLoaderSimple", "ckpt_name")} if "generate" in name else set()
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
                        if isinstance(d, list) and d and isinstance(d[0], list) and k in (
                                "LoadImage", "CheckpointLoaderSimple"):
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
                                "--url", client.base + "/", "--out", str(results_dir)]
                               + (["--thumbnails", str(REPO / "example_workflows")] if args.thumbnails else []),
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
                for name, w in fe.get("workflows", {}).items():
                    check(w["same_prompt_as_api_file"],
                          f"{name}: frontend graphToPrompt() of the UI file == our API file {w['diffs'] or ''}")
                    check(not w["console_errors"], f"{name}: no frontend errors while loading {w['console_errors']}")
        for name in RUNNABLE:
            prompt = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
            if not args.use_default:
                for n in prompt.values():
                    if n["class_type"] == "PHNetModelLoader":
                        n["inputs"]["model_name"] = TINY_PHNET
            t0 = time.time()
            hist, status = run_prompt(client, prompt, args.timeout)
            dt = round(time.time() - t0, 1)
            if not check(status == "success", f"{name}: /prompt ran ({status}, {dt} s)"):
                continue
            files = [img for out in hist["outputs"].values() for img in out.get("images", [])]
            saved = []
            for f in files:
                q = urllib.parse.urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
                code, data = client.get(f"/view?{q}", raw=True)
                target = results_dir / f"{name}__{f['type']}__{f['filename']}"
                target.write_bytes(data)
                from PIL import Image

                with Image.open(target) as im:
                    saved.append({"file": str(target), "type": f["type"], "size": im.size, "http": code})
            report.setdefault("runs", {})[name] = {"seconds": dt, "images": saved}
            outputs = [s for s in saved if s["type"] == "output"]
            check(len(outputs) == 1 and outputs[0]["size"] == (384, 320),
                  f"{name}: saved output image {[(s['size'], Path(s['file']).name) for s in outputs]}")
            if name == "phnet-paste-and-harmonize":
                check(len([s for s in saved if s["type"] == "temp"]) == 2, f"{name}: before/after preview (2 images)")

        gen = json.loads((REPO / "workflows" / "api" / "phnet-generate-and-harmonize.api.json").read_text())
        status, body = client.post("/prompt", {"prompt": gen, "client_id": "phnet-live"})
        errors = body.get("node_errors", {})
        kinds = sorted({(v["class_type"], e["type"], e.get("extra_info", {}).get("input_name"))
                        for v in errors.values() for e in v["errors"]})
        report["generate_prompt"] = {"http": status, "node_errors": kinds}
        only_ckpt = status == 200 or kinds == [("CheckpointLoaderSimple", "value_not_in_list", "ckpt_name")]
        check(only_ckpt, f"phnet-generate-and-harmonize: /prompt -> HTTP {status}, node errors {kinds} "
                         "(only the missing SD checkpoint is allowed)")
        if status == 200:  # a checkpoint is installed: let it finish (or fail) but don't wait for ever
            client.post("/interrupt", {})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
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
