#!/usr/bin/env python3
"""Append a result line to docs/reliability.md between `<!-- MARKER -->` and
`<!-- /MARKER -->` (the scripts that run long trials record themselves here).

    scripts/record-result.py trials "- 2026-12-06: `./scripts/crash-trials.sh 1000` → ..."
"""
import sys

marker, line = sys.argv[1], sys.argv[2]
path = "docs/reliability.md"
text = open(path).read()
start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
i, j = text.index(start) + len(start), text.index(end)
lines = [l for l in text[i:j].strip().splitlines() if l.strip()]
lines.append(line)
text = text[:i] + "\n" + "\n".join(lines) + "\n" + text[j:]
open(path, "w").write(text)
