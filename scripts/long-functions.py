#!/usr/bin/env python3
"""Lists the functions longer than a limit (default 80 lines) in the given C++ files or folders.

A function is a definition whose signature (on one line or several) ends with '{' and whose body
is matched by brace counting (comments and string literals skipped); lambdas inside a function count toward it.
  scripts/long-functions.py include examples [--limit 80]
Exit status 1 when one is found, so that a test can run it.
"""
import pathlib
import re
import sys

SIGNATURE = re.compile(r"^\s*(?!if\b|for\b|while\b|switch\b|else\b|do\b|return\b|namespace\b|"
                       r"struct\b|class\b|union\b|enum\b|extern\b|catch\b|try\b)"
                       r"[^;{}()]*\b([A-Za-z_~][\w:<>~]*|operator\S+)\s*\([^;{}]*\)[^;{}=]*\{\s*$")


def strip(line):
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(?:\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def signature(lines, i):
    """The declaration ending at line i: the lines since the last ';', '{', '}' or directive."""
    start = i
    while start > 0:
        previous = strip(lines[start - 1]).strip()
        if not previous or previous[-1] in ";{}:" or previous.startswith("#"):
            break
        start -= 1
    return " ".join(strip(line).strip() for line in lines[start:i + 1])


def functions(path):
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        match = strip(lines[i]).rstrip().endswith("{") and SIGNATURE.match(signature(lines, i))
        if not match:
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            text = strip(lines[j])
            depth += text.count("{") - text.count("}")
            if depth <= 0 and j > i or (depth == 0 and "}" in text):
                break
            j += 1
        yield match.group(1), i + 1, j - i + 1
        i = j + 1


def main():
    args = sys.argv[1:]
    limit = 80
    if "--limit" in args:
        k = args.index("--limit")
        limit = int(args[k + 1])
        del args[k:k + 2]
    files = []
    for a in args:
        p = pathlib.Path(a)
        files += sorted(p.rglob("*")) if p.is_dir() else [p]
    found = 0
    for f in files:
        if f.suffix not in (".hpp", ".cpp", ".cu", ".cuh", ".h"):
            continue
        for name, line, length in functions(f):
            if length > limit:
                print(f"{f}:{line}: {name}: {length} lines")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
