#!/usr/bin/env python3
"""Generate include/qinfer/text/unicode_data.hpp from the Unicode Character Database.

Usage: scripts/gen-unicode-tables.py [UCD_DIR] > include/qinfer/text/unicode_data.hpp
UCD_DIR defaults to /usr/share/unicode (Debian package `unicode-data`). Reads UnicodeData.txt
(general categories, simple lowercase mappings) and PropList.txt (White_Space). Python stdlib only.

The pre-tokenizers only ask "which major class is this code point in" (the \\p{L}, \\p{N}, ...
of the tokenizer regexes) and "is it whitespace", so the tables hold major classes as sorted
range starts (a few thousand entries) instead of one entry per code point.
"""
import os
import re
import sys

MAX_CODEPOINT = 0x110000

# Major classes, as bit flags; the header names them in `cpt_class`.
UNDEFINED, NUMBER, LETTER, SEPARATOR, MARK, PUNCTUATION, SYMBOL, CONTROL = (1 << i for i in range(8))
CLASS_OF_CATEGORY = {
    "Cn": UNDEFINED, "Cc": CONTROL, "Cf": CONTROL, "Co": CONTROL, "Cs": CONTROL,
    "Ll": LETTER, "Lm": LETTER, "Lo": LETTER, "Lt": LETTER, "Lu": LETTER,
    "Mc": MARK, "Me": MARK, "Mn": MARK,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Pc": PUNCTUATION, "Pd": PUNCTUATION, "Pe": PUNCTUATION, "Pf": PUNCTUATION,
    "Pi": PUNCTUATION, "Po": PUNCTUATION, "Ps": PUNCTUATION,
    "Sc": SYMBOL, "Sk": SYMBOL, "Sm": SYMBOL, "So": SYMBOL,
    "Zl": SEPARATOR, "Zp": SEPARATOR, "Zs": SEPARATOR,
}
# llama.cpp's tables come from Unicode 15.1, Debian 12 ships 15.0. These are the only class changes
# between the two (code points first assigned in 15.1), so tokenizing matches llama.cpp exactly.
UNICODE_15_1_ADDITIONS = [
    (0x2FFC, 0x2FFF, "So"),    # ideographic description characters
    (0x31EF, 0x31EF, "So"),    # CJK stroke HXG
    (0x2EBF0, 0x2EE5D, "Lo"),  # CJK Unified Ideographs Extension I
]

CLASS_NAME = {UNDEFINED: "undefined", NUMBER: "number", LETTER: "letter", SEPARATOR: "separator",
              MARK: "mark", PUNCTUATION: "punctuation", SYMBOL: "symbol", CONTROL: "control"}


def read_unicode_data(path):
    """Yields (code point, category, simple lowercase or None), expanding <..., First>/<..., Last> ranges."""
    first = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cpt = int(fields[0], 16)
            name, category, lower = fields[1], fields[2], fields[13]
            if name.endswith(", First>"):
                first = cpt
                continue
            if name.endswith(", Last>"):
                for c in range(first, cpt + 1):
                    yield c, category, None
                first = None
                continue
            yield cpt, category, int(lower, 16) if lower else None


def read_white_space(path):
    result = []
    pattern = re.compile(r"^([0-9A-F]+)(?:\.\.([0-9A-F]+))?\s*;\s*White_Space\b")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = pattern.match(line)
            if m:
                lo = int(m.group(1), 16)
                hi = int(m.group(2), 16) if m.group(2) else lo
                result.extend(range(lo, hi + 1))
    return sorted(result)


def unicode_version(ucd_dir):
    readme = os.path.join(ucd_dir, "ReadMe.txt")
    try:
        with open(readme, encoding="utf-8") as f:
            m = re.search(r"Version (\d+\.\d+\.\d+)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return "unknown"


def lowercase_runs(pairs):
    """Groups (upper, lower) pairs into runs (first, last, stride, delta): every stride-th code point
    from first to last maps to itself + delta. Case pairs come in blocks (stride 1, e.g. A-Z) or
    alternate upper/lower (stride 2, e.g. U+0100..U+012E), so a few hundred runs cover them all."""
    runs = []
    i = 0
    while i < len(pairs):
        first, lower = pairs[i]
        delta = lower - first
        best_stride, best_len = 1, 1
        for stride in (1, 2):
            n = 1
            while (i + n < len(pairs) and pairs[i + n][0] == first + n * stride
                   and pairs[i + n][1] - pairs[i + n][0] == delta):
                n += 1
            if n > best_len:
                best_stride, best_len = stride, n
        last = pairs[i + best_len - 1][0]
        runs.append((first, last, best_stride, delta))
        i += best_len
    return runs


def main():
    ucd_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"
    classes = bytearray([UNDEFINED]) * MAX_CODEPOINT
    lower_pairs = []
    for cpt, category, lower in read_unicode_data(os.path.join(ucd_dir, "UnicodeData.txt")):
        classes[cpt] = CLASS_OF_CATEGORY[category]
        if lower is not None and lower != cpt:
            lower_pairs.append((cpt, lower))
    if unicode_version(ucd_dir) < "15.1":
        for lo, hi, category in UNICODE_15_1_ADDITIONS:
            for cpt in range(lo, hi + 1):
                if classes[cpt] == UNDEFINED:
                    classes[cpt] = CLASS_OF_CATEGORY[category]
    lower_pairs.sort()
    white_space = read_white_space(os.path.join(ucd_dir, "PropList.txt"))

    starts = [(0, classes[0])]
    for cpt in range(1, MAX_CODEPOINT):
        if classes[cpt] != starts[-1][1]:
            starts.append((cpt, classes[cpt]))
    runs = lowercase_runs(lower_pairs)

    out = []
    w = out.append
    w("// qinfer/text/unicode_data.hpp — Unicode tables for the pre-tokenizers. GENERATED, do not edit:")
    w("//   python3 scripts/gen-unicode-tables.py > include/qinfer/text/unicode_data.hpp")
    w(f"// Source: Unicode Character Database {unicode_version(ucd_dir)} (UnicodeData.txt, PropList.txt),")
    w("// plus the classes of the code points Unicode 15.1 added (llama.cpp's tables are 15.1).")
    w("#pragma once")
    w("")
    w("#include <cstdint>")
    w("")
    w('#include "../core/config.hpp"')
    w("")
    w("QINFER_NAMESPACE_BEGIN")
    w("namespace text {")
    w("")
    w("// Major class of a code point, one bit each, so that sets of classes are masks.")
    w("enum cpt_class : std::uint8_t {")
    for flag in (UNDEFINED, NUMBER, LETTER, SEPARATOR, MARK, PUNCTUATION, SYMBOL, CONTROL):
        w(f"    cpt_{CLASS_NAME[flag]} = 0x{flag:02X},")
    w("};")
    w("")
    w("namespace detail {")
    w("")
    w(f'inline constexpr const char* unicode_data_version = "{unicode_version(ucd_dir)}";')
    w("")
    w("// Code point c has class `cls` of the last entry whose `first` <= c (sorted by first).")
    w("struct class_range {")
    w("    std::uint32_t first : 24;")
    w("    std::uint32_t cls : 8;")
    w("};")
    w(f"inline constexpr class_range class_ranges[{len(starts)}] = {{")
    line = "   "
    for cpt, cls in starts:
        item = f" {{0x{cpt:05X}, 0x{cls:02X}}},"
        if len(line) + len(item) > 110:
            w(line)
            line = "   "
        line += item
    w(line)
    w("};")
    w("")
    w("// Property White_Space.")
    w(f"inline constexpr std::uint32_t white_space[{len(white_space)}] = {{")
    for i in range(0, len(white_space), 12):
        w("    " + ", ".join(f"0x{c:04X}" for c in white_space[i:i + 12]) + ",")
    w("};")
    w("")
    w("// Simple lowercase mapping: for c in [first, last] with (c - first) % stride == 0, lower(c) = c + delta.")
    w("struct lowercase_run {")
    w("    std::uint32_t first, last;")
    w("    std::int32_t delta;")
    w("    std::uint32_t stride;")
    w("};")
    w(f"inline constexpr lowercase_run lowercase_runs[{len(runs)}] = {{")
    line = "   "
    for first, last, stride, delta in runs:
        item = f" {{0x{first:05X}, 0x{last:05X}, {delta}, {stride}}},"
        if len(line) + len(item) > 110:
            w(line)
            line = "   "
        line += item
    w(line)
    w("};")
    w("")
    w("}  // namespace detail")
    w("}  // namespace text")
    w("QINFER_NAMESPACE_END")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
