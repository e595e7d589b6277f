"""Count the package's save/load code at a git revision: model savers and loaders, safetensors readers and
writers, config (de)serialisers and config.json readers, and the lines of the files that hold them (issue 27).

    python scripts/count_saveload.py            # the working tree
    python scripts/count_saveload.py 62ce5c1    # a commit

Each count is of function definitions, found with ``ast``; the listing after the table says where each one is.
Lines: every line of the modules that only save and load (``DEDICATED``), and elsewhere the lines of the
functions counted.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "flowvq_cli"
# the facade's from_pretrained opens a bundle and calls the models' own: not a model loader
FACADES = {"flowvq_cli/api.py"}
# modules that hold nothing but saving and loading: all their lines count (before and after issue 27)
DEDICATED = {"flowvq_cli/checkpoint.py", "flowvq_cli/vq/weights.py", "flowvq_cli/modeling.py",
             "flowvq_cli/bundle.py", "flowvq_cli/training_state.py"}


def sources(rev: str | None) -> dict[str, str]:
    """path -> text of every module of the package, at ``rev`` (None: the working tree)."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in (ROOT / PACKAGE).rglob("*.py")}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, PACKAGE], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout for n in names if n.endswith(".py")}


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def _reads_config_json(node: ast.AST) -> bool:
    """A function that parses JSON and names config.json (directly or through a CONFIG_NAME constant)."""
    text = ast.unparse(node)
    return "json.loads" in text and ("config.json" in text or "CONFIG_NAME" in text)


def classify(path: str, fn: ast.FunctionDef) -> list[str]:
    kinds = []
    calls = _calls(fn)
    if fn.name == "save_pretrained":
        kinds.append("model savers (save_pretrained)")
    if fn.name == "from_pretrained" and path not in FACADES:
        kinds.append("model loaders (from_pretrained)")
    if "load_file" in calls or "safe_open" in calls:
        kinds.append("safetensors readers")
    if "save_file" in calls:
        kinds.append("safetensors writers")
    if fn.name in ("to_dict", "from_dict"):
        kinds.append(f"config {fn.name}")
    if _reads_config_json(fn):
        kinds.append("config.json readers")
    if "load_state_dict" in calls:
        kinds.append("state-dict loaders")
    return kinds


def count(rev: str | None) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(kind -> places, path -> save/load lines): every line of a dedicated module, elsewhere the lines of the
    functions counted (trainers' state-dict loads aside)."""
    found: dict[str, list[str]] = defaultdict(list)
    lines: dict[str, int] = {}
    for path, text in sorted(sources(rev).items()):
        tree = ast.parse(text)
        spans: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for kind in classify(path, node):
                    found[kind].append(f"{path}:{node.lineno} {node.name}")
                    if kind != "state-dict loaders":
                        spans.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if path in DEDICATED:
            lines[path] = len(text.splitlines())
        elif spans:
            lines[path] = len(spans)
    return found, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", help="a git revision (default: the working tree)")
    args = parser.parse_args()
    found, lines = count(args.rev)
    for kind in sorted(found):
        print(f"{len(found[kind]):4d}  {kind}")
    print(f"{sum(lines.values()):4d}  lines of save/load code ({len(lines)} files: whole modules that only save and "
          "load, the functions above elsewhere)")
    print()
    for kind in sorted(found):
        print(f"{kind}:")
        for where in found[kind]:
            print(f"    {where}")
    print("files:")
    for path, n in lines.items():
        print(f"    {n:5d} {path}")


if __name__ == "__main__":
    main()
