"""Validate and run ComfyUI API-format prompts against a set of V1 node classes.

The checks follow ComfyUI's ``execution.validate_inputs``: every node type exists, required inputs are
present, links point at existing outputs of the right type, widget values are of the right kind and
within min/max, combo values are in the list (unless the node's VALIDATE_INPUTS takes over), and the
graph has an output node. ``run_prompt`` then executes only what output nodes need, in dependency order.
"""

from __future__ import annotations

import inspect


class PromptError(ValueError):
    pass


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def output_types(cls) -> tuple:
    return tuple(cls.RETURN_TYPES)


def validate_prompt(prompt: dict, classes: dict) -> list[str]:
    errors: list[str] = []
    if not any(getattr(classes.get(n["class_type"]), "OUTPUT_NODE", False) for n in prompt.values()):
        errors.append("prompt has no output node")
    for nid, node in prompt.items():
        ct = node.get("class_type")
        cls = classes.get(ct)
        if cls is None:
            errors.append(f"#{nid}: unknown node type {ct!r}")
            continue
        spec = cls.INPUT_TYPES()
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        inputs = node.get("inputs", {})
        validate = getattr(cls, "VALIDATE_INPUTS", None)
        custom = set(inspect.getfullargspec(validate).args) if validate else set()
        for name in inputs:
            if name not in declared:
                errors.append(f"#{nid} {ct}: unknown input {name!r}")
        for name, decl in declared.items():
            typ, opts = decl[0], (decl[1] if len(decl) > 1 else {})
            if name not in inputs:
                if name in spec.get("required", {}):
                    errors.append(f"#{nid} {ct}: required input {name!r} missing")
                continue
            v = inputs[name]
            if _is_link(v):
                src = prompt.get(v[0])
                if src is None:
                    errors.append(f"#{nid} {ct}.{name}: link to missing node {v[0]}")
                    continue
                scls = classes.get(src["class_type"])
                if scls is None:
                    continue
                outs = output_types(scls)
                if not 0 <= v[1] < len(outs):
                    errors.append(f"#{nid} {ct}.{name}: {src['class_type']} has no output {v[1]}")
                    continue
                want = "COMBO" if isinstance(typ, list) else typ
                if outs[v[1]] not in want.split(",") and "*" not in (outs[v[1]], want):
                    errors.append(f"#{nid} {ct}.{name}: wants {want}, gets {outs[v[1]]} from #{v[0]}")
                continue
            if isinstance(typ, list):
                if name not in custom and v not in typ:
                    errors.append(f"#{nid} {ct}.{name}: {v!r} not in {typ[:10]}")
                continue
            kinds = {"INT": (int,), "FLOAT": (int, float), "STRING": (str,), "BOOLEAN": (bool,)}
            if typ in kinds:
                if not isinstance(v, kinds[typ]) or (typ in ("INT", "FLOAT") and isinstance(v, bool)):
                    errors.append(f"#{nid} {ct}.{name}: {v!r} is not a {typ}")
                    continue
                if name not in custom:
                    if "min" in opts and v < opts["min"]:
                        errors.append(f"#{nid} {ct}.{name}: {v} < min {opts['min']}")
                    if "max" in opts and v > opts["max"]:
                        errors.append(f"#{nid} {ct}.{name}: {v} > max {opts['max']}")
            else:
                errors.append(f"#{nid} {ct}.{name}: a {typ} input needs a link, got {v!r}")
        if validate and not errors:
            args = {k: inputs[k] for k in custom if k in inputs and not _is_link(inputs[k])}
            r = validate(**args)
            if r is not True:
                errors.append(f"#{nid} {ct}: VALIDATE_INPUTS: {r}")
    return errors


def run_prompt(prompt: dict, classes: dict) -> dict:
    """Execute the prompt, under ``torch.inference_mode`` as ComfyUI does; returns {node_id: outputs tuple or ui
    dict}."""
    errors = validate_prompt(prompt, classes)
    if errors:
        raise PromptError("; ".join(errors))
    results: dict = {}
    instances: dict = {}

    def run(nid, stack=()):
        if nid in results:
            return results[nid]
        if nid in stack:
            raise PromptError(f"cycle at {nid}")
        node = prompt[nid]
        cls = classes[node["class_type"]]
        kwargs = {}
        for name, v in node["inputs"].items():
            kwargs[name] = run(v[0], stack + (nid,))[v[1]] if _is_link(v) else v
        obj = instances.setdefault(nid, cls())
        out = getattr(obj, cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):
            results[nid] = out.get("result", ())
            results[nid + ":ui"] = out.get("ui")
        else:
            if len(out) != len(cls.RETURN_TYPES):
                raise PromptError(f"#{nid} returned {len(out)} values for {len(cls.RETURN_TYPES)} outputs")
            results[nid] = out
        return results[nid]

    import torch

    with torch.inference_mode():  # as ComfyUI's executor runs every node: models load as inference tensors
        for nid, node in prompt.items():
            if getattr(classes[node["class_type"]], "OUTPUT_NODE", False):
                run(nid)
    return results
