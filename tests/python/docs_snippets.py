"""Run every ```python block of docs/clients.md (argv[1]) from the repository root, each in a
fresh namespace; LENDFUSION_URL and LENDFUSION_TOKEN are set by the caller."""

import os
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[2]
text = Path(sys.argv[1]).read_text()
blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
if not blocks:
    raise SystemExit("no python snippets found")
os.chdir(root)
for i, code in enumerate(blocks, 1):
    try:
        exec(compile(code, f"clients.md snippet {i}", "exec"), {"__name__": "__main__"})
    except Exception as e:  # noqa: BLE001 - report which snippet failed
        raise SystemExit(f"snippet {i} failed: {type(e).__name__}: {e}\n{code}")
print(f"{len(blocks)} snippets ran")
