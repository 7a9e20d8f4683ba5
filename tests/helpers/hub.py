"""A hand-built Hugging Face cache the weights and sources tests share: files put where the Hub's client looks."""

from __future__ import annotations

from pathlib import Path

COMMIT_A = "a" * 40
COMMIT_B = "0123456789abcdef0123456789abcdef01234567"


def _add_files(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT_B) -> None:
    """Files at their paths in a repo's HF cache snapshot (links into blobs), its main ref pointing there."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        entry = repo / "snapshots" / commit / name
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.symlink_to(Path(*[".."] * (name.count("/") + 2), "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
