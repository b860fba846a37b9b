#!/usr/bin/env python3
"""Checks that qinfer's headers include only downward: each folder of include/qinfer/ sits on
a floor, and a header may include headers of its own folder or of folders on lower floors,
never a higher one or a neighbour on the same floor. Prints each violation; exits 1 if any.

    python3 scripts/check-layering.py [ROOT]
"""
import pathlib
import re
import sys

# The floors, lowest first (the README's architecture section draws the same picture).
FLOORS = [
    ["core"],
    ["quant", "gguf"],
    ["ops", "text", "sampling"],
    ["model"],
    ["eval", "tools", "reference"],
    ["app"],
    ["."],  # qinfer.hpp, the umbrella
]
FLOOR = {folder: i for i, names in enumerate(FLOORS) for folder in names}


def folder_of(path: pathlib.Path, base: pathlib.Path) -> str:
    parts = path.relative_to(base).parts[:-1]
    parts = [p for p in parts if p != "detail"]  # a folder's detail/ belongs to the folder
    return "/".join(parts) or "."


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    base = root / "include" / "qinfer"
    bad = []
    headers = sorted(base.rglob("*.hpp"))
    for h in headers:
        here = folder_of(h, base)
        if here not in FLOOR:
            bad.append(f"{h.relative_to(root)}: folder '{here}' has no floor in scripts/check-layering.py")
            continue
        for n, line in enumerate(h.read_text(encoding="utf-8").splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            target = (h.parent / m.group(1)).resolve()
            try:
                there = folder_of(target, base.resolve())
            except ValueError:
                bad.append(f"{h.relative_to(root)}:{n}: includes {m.group(1)}, outside include/qinfer")
                continue
            if there == here:
                continue
            if there not in FLOOR or FLOOR[there] >= FLOOR[here]:
                bad.append(f"{h.relative_to(root)}:{n}: {here}/ (floor {FLOOR[here]}) includes {m.group(1)} "
                           f"from {there}/ (floor {FLOOR.get(there, '?')}): only lower floors may be included")
    for b in bad:
        print(b)
    print(f"check-layering: {len(headers)} headers, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
