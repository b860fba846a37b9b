#!/usr/bin/env python3
"""Amalgamates include/qinfer/qinfer.hpp and every qinfer header it includes into one file.

    python3 scripts/make-single-header.py           # writes single_include/qinfer/qinfer.hpp
    python3 scripts/make-single-header.py --check   # exit 1 if the committed file is out of date
    python3 scripts/make-single-header.py -o FILE   # write elsewhere ('-' for stdout)

Each qinfer header is inlined where it is first included, exactly as the preprocessor would
expand it under `#pragma once`, so every header comes after the headers it depends on and
appears once. `#pragma once` lines and the `#include` lines of qinfer headers (quoted, or
`<qinfer/...>`) are removed; system includes (`<vector>`, `<Eigen/Core>`, `<xsimd/xsimd.hpp>`,
...) stay where they are. The result needs only Eigen's and xsimd's include paths.

A qinfer header included under `#if` (a conditional include) is inlined there inside a
synthetic include guard, and again at each later inclusion until one is unconditional, so the
output stays equivalent to the separate headers whatever the conditions evaluate to.

Python 3 standard library only.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE_DIR = ROOT / "include"
ENTRY = INCLUDE_DIR / "qinfer" / "qinfer.hpp"
OUTPUT = ROOT / "single_include" / "qinfer" / "qinfer.hpp"

DIRECTIVE = re.compile(r"^\s*#\s*(\w+)(.*)$")
QUOTED_INCLUDE = re.compile(r'^\s*"([^"]+)"')
ANGLE_INCLUDE = re.compile(r"^\s*<([^>]+)>")
PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\b")
VERSION_MACRO = re.compile(r"^\s*#\s*define\s+QINFER_VERSION_STRING\s+\"([^\"]*)\"", re.M)


class AmalgamationError(Exception):
    pass


def rel(path: Path) -> str:
    try:
        return path.relative_to(INCLUDE_DIR).as_posix()
    except ValueError:
        return str(path)


def guard_macro(path: Path) -> str:
    return "QINFER_SINGLE_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", rel(path)).upper()


def classic_guard(lines: list[str]) -> bool:
    """True when the file is wrapped in #ifndef X / #define X ... #endif (its own guard)."""
    directives = [(i, m.group(1), m.group(2).strip()) for i, l in enumerate(lines) if (m := DIRECTIVE.match(l))]
    if len(directives) < 3:
        return False
    (_, d0, a0), (_, d1, a1) = directives[0], directives[1]
    if d0 != "ifndef" or d1 != "define" or a1.split()[:1] != a0.split()[:1] or directives[-1][1] != "endif":
        return False
    # The first #ifndef must close at the last #endif, not earlier.
    depth = 0
    for n, (_, d, _) in enumerate(directives):
        if d in ("if", "ifdef", "ifndef"):
            depth += 1
        elif d == "endif":
            depth -= 1
            if depth == 0 and n != len(directives) - 1:
                return False
    return True


class Amalgamator:
    def __init__(self) -> None:
        self.done: set[Path] = set()      # included unconditionally: later inclusions are no-ops
        self.guarded: set[Path] = set()   # emitted at least once inside a synthetic guard
        self.stack: list[Path] = []       # current inclusion chain (to report cycles)
        self.out: list[str] = []
        self.order: list[str] = []

    def resolve(self, including: Path, directive_args: str, lineno: int) -> Path | None:
        """The qinfer header an #include names, or None for a system header."""
        if m := QUOTED_INCLUDE.match(directive_args):
            name = m.group(1)
            for base in (including.parent, INCLUDE_DIR):
                candidate = (base / name).resolve()
                if candidate.is_file():
                    return candidate
            raise AmalgamationError(f"{rel(including)}:{lineno}: cannot find \"{name}\" "
                                    f"(looked next to the file and in {INCLUDE_DIR})")
        if m := ANGLE_INCLUDE.match(directive_args):
            name = m.group(1)
            if name.startswith("qinfer/"):
                candidate = (INCLUDE_DIR / name).resolve()
                if not candidate.is_file():
                    raise AmalgamationError(f"{rel(including)}:{lineno}: cannot find <{name}> in {INCLUDE_DIR}")
                return candidate
            return None
        raise AmalgamationError(f"{rel(including)}:{lineno}: cannot parse #include{directive_args}")

    def include(self, path: Path, conditional: bool) -> None:
        if path in self.done:
            return
        if path in self.stack:
            chain = " -> ".join(rel(p) for p in self.stack + [path])
            raise AmalgamationError(f"include cycle: {chain}")
        if not conditional:
            self.done.add(path)
        # Once a copy sits under a condition, every copy needs the guard (it may be the second).
        guarded = conditional or path in self.guarded
        if guarded:
            self.guarded.add(path)
        self.stack.append(path)
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        own_guard = classic_guard(lines)
        name = rel(path)
        if name not in self.order:
            self.order.append(name)
        self.out.append(f"// ---- begin {name} ----")
        if guarded:
            self.out += [f"#ifndef {guard_macro(path)}", f"#define {guard_macro(path)}"]
        depth = 0  # preprocessor conditional nesting inside this file
        for lineno, line in enumerate(lines, 1):
            if PRAGMA_ONCE.match(line):
                continue
            m = DIRECTIVE.match(line)
            if m:
                d = m.group(1)
                if d in ("if", "ifdef", "ifndef"):
                    depth += 1
                elif d == "endif":
                    depth -= 1
                elif d == "include":
                    target = self.resolve(path, m.group(2), lineno)
                    if target is not None:
                        nested = conditional or depth > (1 if own_guard else 0)
                        self.include(target, nested)
                        continue
            self.out.append(line)
        if guarded:
            self.out.append(f"#endif  // {guard_macro(path)}")
        self.out.append(f"// ---- end {name} ----")
        self.stack.pop()


def amalgamate() -> str:
    if not ENTRY.is_file():
        raise AmalgamationError(f"{ENTRY} not found")
    a = Amalgamator()
    a.include(ENTRY.resolve(), conditional=False)
    unreachable = sorted(rel(h.resolve()) for h in (INCLUDE_DIR / "qinfer").rglob("*.hpp") if rel(h.resolve()) not in a.order)
    if unreachable:
        print("make-single-header: note: not included from qinfer/qinfer.hpp, so not in the single header: "
              + ", ".join(unreachable), file=sys.stderr)
    m = VERSION_MACRO.search((INCLUDE_DIR / "qinfer" / "core" / "config.hpp").read_text(encoding="utf-8"))
    version = m.group(1) if m else "unknown"
    head = [
        f"// qinfer {version} — single-header edition: include/qinfer/qinfer.hpp and the {len(a.order) - 1} headers",
        "// it includes, amalgamated. GENERATED by scripts/make-single-header.py; do not edit (edit",
        "// include/ and rerun the script). Needs Eigen's and xsimd's include paths, C++20, and",
        "// -ffp-contract=off (GCC/Clang) for quantization bit-exact with ggml.",
        "#pragma once",
        "",
    ]
    return "\n".join(head + a.out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the output file differs from a fresh amalgamation")
    p.add_argument("-o", "--output", type=Path, default=OUTPUT, help=f"output file, '-' for stdout (default {OUTPUT.relative_to(ROOT)})")
    args = p.parse_args()
    try:
        text = amalgamate()
    except (AmalgamationError, OSError, UnicodeDecodeError) as e:
        print(f"make-single-header: error: {e}", file=sys.stderr)
        return 2
    if str(args.output) == "-":
        sys.stdout.write(text)
        return 0
    out: Path = args.output
    if args.check:
        try:
            current = out.read_text(encoding="utf-8")
        except OSError:
            print(f"make-single-header: {out} is missing; run python3 scripts/make-single-header.py", file=sys.stderr)
            return 1
        if current != text:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), str(out), "fresh", lineterm="", n=1))
            print(f"make-single-header: {out} is out of date ({len(diff)} diff lines); "
                  f"run python3 scripts/make-single-header.py", file=sys.stderr)
            for line in diff[:20]:
                print("  " + line, file=sys.stderr)
            return 1
        print(f"make-single-header: {out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"make-single-header: wrote {out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
