"""The runnable blocks of the README and the docs site, and the one bash script that runs a page.

A fenced block is run when its language is ``bash``, ``sh``, ``shell``, ``console`` (its ``$ ``
lines) or ``python``; other languages (``text``, ``json``, ``yaml`` …) are shown, not run. A block
that only illustrates is marked, and is reported as skipped by name, never silently:

* an HTML comment on the line(s) just before the fence:
  ``<!-- docs-test: skip reason="starts the server; the test has its own" -->``
* or ``skip`` in the fence's info string: ```` ```bash skip ````.

A page runs as **one** bash process, its blocks in order, so a later block sees the variables
and files of the earlier ones: ``set -euo pipefail`` (a failing command fails the page) and
``set -a`` (every variable a block sets is exported, so a later Python block reads it from its
environment). Each Python block runs as its own ``python`` process from that script.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
RUN_LANGUAGES = SHELL_LANGUAGES | {"python", "py"}
FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<info>[^`\n]*)$")
SKIP_COMMENT = re.compile(r"<!--\s*docs-test:\s*skip(?:\s+reason=\"(?P<reason>[^\"]*)\")?\s*-->")
#: marks the start of each block in the page script's stderr (which block failed)
BLOCK_MARK = "::docs-block::"


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skip_reason: str | None

    @property
    def name(self) -> str:
        first = next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")
        return f"{self.page}:{self.line} [{self.language}: {first[:50]}]"

    @property
    def shell(self) -> bool:
        return self.language in SHELL_LANGUAGES


def pages() -> list[Path]:
    """README.md and every Markdown page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def extract(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file, in order (marked ones included, with their reason)."""
    lines = path.read_text().splitlines()
    page = str(path.relative_to(ROOT))
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        info = match["info"].strip().split()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(r"^ {0,3}```\s*$", lines[i]):
            body.append(lines[i][len(match["indent"]) :] if lines[i].startswith(match["indent"]) else lines[i])
            i += 1
        i += 1  # the closing fence
        if not info or info[0].lower() not in RUN_LANGUAGES:
            continue
        reason = _skip_reason(lines, start, info)
        blocks.append(Block(page, start + 1, info[0].lower(), "\n".join(body) + "\n", reason))
    return blocks


def _skip_reason(lines: list[str], fence: int, info: list[str]) -> str | None:
    if "skip" in info[1:]:
        return "marked `skip` in the fence"
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j >= 0:
        comment = SKIP_COMMENT.search(lines[j])
        if comment:
            return comment["reason"] or "marked skip (no reason given)"
    return None


def console_commands(code: str) -> str:
    """The commands of a ``console`` block: its ``$ `` lines and their ``\\`` continuations."""
    commands: list[str] = []
    continued = False
    for line in code.splitlines():
        if continued:
            commands.append(line)
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def page_script(blocks: list[Block], workdir: Path, python: str) -> str:
    """One bash script running the page's runnable blocks in order (Python blocks as files)."""
    parts = [
        "set -euo pipefail",
        "set -a  # every variable a block sets is exported: later blocks, Python ones too, see it",
    ]
    for n, block in enumerate(blocks):
        if block.skip_reason is not None:
            continue
        parts.append(f"printf '\\n%s %s\\n' {shlex.quote(BLOCK_MARK)} {shlex.quote(block.name)} >&2")
        if block.language in ("python", "py"):
            source = workdir / f".docs-block-{n}.py"
            source.write_text(block.code)
            parts.append(f"{shlex.quote(python)} {shlex.quote(str(source))}")
        elif block.language == "console":
            parts.append(console_commands(block.code))
        else:
            parts.append(block.code)
    return "\n".join(parts) + "\n"


def failed_block(stderr: str) -> str:
    """The name of the last block the script started (the one that failed)."""
    marks = [line[len(BLOCK_MARK) :].strip() for line in stderr.splitlines() if line.startswith(BLOCK_MARK)]
    return marks[-1] if marks else "(before the first block)"
