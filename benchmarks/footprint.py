"""Installed footprint of a minibert embedding server next to the usual torch stacks: each stack
is installed by pip into a fresh virtualenv in a temporary folder, and we measure what it adds.

    python benchmarks/footprint.py                 # every stack: docs/results/footprint.json
    python benchmarks/footprint.py --stacks minibert-serve sentence-transformers --json out.json

The stacks (STACKS below):
  - minibert-serve: `pip install .[serve]` from this repository (numpy, numba, tokenizers,
    safetensors, uvicorn; the bundled model is inside the wheel);
  - sentence-transformers: sentence-transformers with torch 2.13.0, the CPU wheel;
  - sentence-transformers-serve: the same plus FastAPI and uvicorn, a server like
    benchmarks/peer_server.py --engine sentence-transformers;
  - infinity-cpu: infinity-emb[server,torch] with torch 2.13.0 (the CPU wheel; left to
    itself, pip picks the newest torch, which brings the CUDA libraries, several GB more).

For each: the bytes of the files pip added to site-packages (the size of an empty virtualenv's
site-packages, pip alone, is subtracted), the disk blocks they take, the number of
distributions, the ten largest, and how long pip took (from the local package index and cache,
so the time says little). Model weights (all-MiniLM-L6-v2, 87 MB) are not counted for any stack.
"""

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACKS = {
    "minibert-serve": [f"{ROOT}[serve]"],
    "sentence-transformers": ["sentence-transformers", "torch==2.13.0"],
    "sentence-transformers-serve": ["sentence-transformers", "torch==2.13.0", "fastapi", "uvicorn"],
    "infinity-cpu": ["infinity-emb[server,torch]", "torch==2.13.0"],
}
# Run by each virtualenv's own Python: the size of every installed distribution's files.
MEASURE = """
import json, os, sys, sysconfig
from importlib.metadata import distributions
site = sysconfig.get_paths()["purelib"]
def walk(top):
    size = blocks = 0
    for folder, _, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks
per_dist = {}
for dist in distributions():
    total = 0
    for f in dist.files or []:
        p = f.locate()
        if os.path.isfile(p) and not os.path.islink(p):
            total += os.path.getsize(p)
    per_dist[f"{dist.metadata['Name']} {dist.version}"] = total
size, blocks = walk(site)
print(json.dumps({"bytes": size, "disk_bytes": blocks, "distributions": per_dist}))
"""


def measure(python: Path) -> dict:
    done = subprocess.run([str(python), "-c", MEASURE], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def install(name: str, requirements: list[str], workdir: Path) -> dict:
    venv = workdir / name
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    empty = measure(python)
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"requirements": _shown(requirements), "error": done.stderr.strip()[-500:]}
    full = measure(python)
    added = {k: v for k, v in full["distributions"].items() if k not in empty["distributions"]}
    largest = sorted(added.items(), key=lambda kv: -kv[1])[:10]
    return {
        "requirements": _shown(requirements),
        "added_mb": round((full["bytes"] - empty["bytes"]) / 1e6, 1),
        "added_disk_mb": round((full["disk_bytes"] - empty["disk_bytes"]) / 1e6, 1),
        "distributions": len(added),
        "largest_mb": {k: round(v / 1e6, 1) for k, v in largest},
        "pip_seconds": round(seconds, 1),
    }


def _shown(requirements: list[str]) -> list[str]:
    # the repository's path depends on the machine: shown as "."
    return [r.replace(str(ROOT), ".") for r in requirements]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS))
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "footprint.json")
    p.add_argument("--keep", action="store_true", help="keep the virtualenvs (printed)")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="minibert-footprint-"))
    results = {
        "benchmark": "benchmarks/footprint.py",
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "note": "bytes of files pip added to a fresh virtualenv's site-packages; "
        "model weights not included",
        "stacks": {},
    }
    try:
        for name in args.stacks:
            print(f"installing {name} ...", file=sys.stderr)
            results["stacks"][name] = row = install(name, STACKS[name], workdir)
            shown = row.get("added_mb", row.get("error"))
            print(
                f"  {name}: {shown} MB, {row.get('distributions')} distributions", file=sys.stderr
            )
    finally:
        if args.keep:
            print(f"virtualenvs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'stack':<28} {'MB':>8} {'on disk':>8} {'dists':>6}")
    for name, row in results["stacks"].items():
        if "error" in row:
            print(f"{name:<28} failed: {row['error'][-120:]}")
        else:
            print(
                f"{name:<28} {row['added_mb']:>8.1f} {row['added_disk_mb']:>8.1f} "
                f"{row['distributions']:>6}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
