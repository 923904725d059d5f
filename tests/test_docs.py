"""The documentation's code runs, and its links resolve.

Every ```python block of every page under docs/ is run: the blocks of a page in order, in one
fresh namespace per page, in a temporary working directory (so a page may save files). A
failure names the page, the block's number and line, and the error.

Two markers, each an HTML comment on a line of its own (invisible on the site):

* ``<!-- docs-test: skip -->`` right before a block: the block is not run. Only for code that
  cannot run here (a download, a file the reader has); the page says so in its text.
* ``<!-- docs-test: needs NAME ... -->``: NAME is a module (``sklearn``, ``torch``) or a dotted
  path to an attribute of one (``fastrnn.backend.use_kernel_set``), which must exist. Right
  before a block, it concerns that block: the block is left out when a NAME is missing (so
  later blocks must not depend on it). Anywhere else, it concerns the page: the page is
  skipped (not failed) when a NAME is missing.

The link tests check what mkdocs would only check when it builds: the README's links into
docs/, the docs' relative links between pages (and their #anchors' pages), the snippets the
pages include (``--8<-- "path"``), and that mkdocs.yml's nav and the pages under docs/ agree.
They need neither mkdocs nor any optional package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

SKIP_MARKER = "<!-- docs-test: skip -->"
NEEDS = re.compile(r"<!--\s*docs-test:\s*needs\s+([^>]*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n`]*)$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
# an included file, with an optional line range ("path:start:end")
SNIPPET = re.compile(r"^[ \t]*--8<--[ \t]+\"(?P<path>[^\":]+)(?::[\d:,-]*)?\"", re.MULTILINE)


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """The page's ```python blocks as ``(first line number, code, skipped)``, in order;
    `skipped` when the skip marker precedes the block (see :func:`block_needs`)."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = match["info"].strip().lstrip("{").lstrip(".").split()[0:1]
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip() == fence or
                                      lines[i].strip().startswith(fence) and
                                      lines[i].strip().strip(fence[0]) == ""):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        if language and language[0].lower() in ("python", "py"):
            previous = _line_before(lines, start - 1)
            blocks.append((start + 1, "\n".join(body) + "\n", previous == SKIP_MARKER))
    return blocks


def _line_before(lines: list[str], index: int) -> str:
    """The last non-blank line before ``lines[index]``, stripped ("" if none)."""
    return next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")


def block_needs(text: str) -> tuple[list[str], dict[int, list[str]]]:
    """The page's ``needs`` names: those of the page, and those of single blocks, by the
    block's first line number (as :func:`python_blocks` gives it)."""
    lines = text.splitlines()
    page: list[str] = []
    blocks: dict[int, list[str]] = {}
    for index, line in enumerate(lines):
        match = NEEDS.fullmatch(line.strip())
        if not match:
            continue
        following = next((i for i in range(index + 1, len(lines)) if lines[i].strip()), None)
        if following is not None and FENCE.match(lines[following]):
            blocks[following + 2] = match[1].split()
        else:
            page.extend(match[1].split())
    return page, blocks


def _missing(name: str) -> str:
    """Why `name` (a module or module.attribute path) is missing, or "" if it exists."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            if cut == 1:
                return f"needs {name}: {module_name} is not installed"
            continue
        obj = module
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return f"needs {name}, which this fastrnn does not have"
            obj = getattr(obj, attribute)
        return ""
    return f"needs {name}"


def _require(name: str) -> None:
    """Skips the calling test unless `name` (a module or module.attribute path) exists."""
    reason = _missing(name)
    if reason:
        pytest.skip(reason)


def run_page(page: Path, name: str) -> None:
    """Runs the page's python blocks in order in one fresh namespace; fails naming `name`, the
    block and the error; skips when a ``needs`` marker names something missing."""
    text = page.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    if not blocks:
        pytest.skip("no python blocks")
    page_needs, needs_of_block = block_needs(text)
    for needed in page_needs:
        _require(needed)
    import fastrnn

    namespace: dict = {"__name__": "__docs__"}
    fastrnn.backend.clear_session()
    for number, (line, code, skipped) in enumerate(blocks, 1):
        if skipped or any(_missing(needed) for needed in needs_of_block.get(line, [])):
            continue
        where = f"{name}, python block {number} (line {line})"
        try:
            exec(compile(code, f"<{where}>", "exec"), namespace)  # the docs' own examples
        except Exception as error:
            detail = "".join(traceback.format_exception(type(error), error,
                                                        error.__traceback__)[-6:])
            pytest.fail(f"{where} failed: {type(error).__name__}: {error}\n{detail}",
                        pytrace=False)


def _pages_with_code() -> list[Path]:
    return [page for page in _pages() if python_blocks(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", _pages_with_code(), ids=_page_id)
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a page may save files
    run_page(page, f"docs/{_page_id(page)}")


def test_block_extraction_and_markers() -> None:
    text = "\n".join([
        "# page", "```python", "a = 1", "```", "", SKIP_MARKER, "```python", "download()", "```",
        "```bash", "pip install x", "```", "!!! note", "    ```python", "    b = a + 1",
        "    ```", "```py", "c = 3", "```",
    ])
    blocks = python_blocks(text)
    assert [(code, skipped) for _, code, skipped in blocks] == [
        ("a = 1\n", False), ("download()\n", True), ("b = a + 1\n", False), ("c = 3\n", False)]
    assert blocks[0][0] == 3
    assert block_needs("<!-- docs-test: needs sklearn matplotlib -->\ntext\n\n"
                       "<!-- docs-test: needs torch -->\n\n```python\nimport torch\n```\n") == (
        ["sklearn", "matplotlib"], {7: ["torch"]})
    text = "<!-- docs-test: needs torch -->\n\n```python\nimport torch\n```"
    assert python_blocks(text)[0][0] == 4 and block_needs(text) == ([], {4: ["torch"]})


def test_a_failing_block_names_its_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("```python\nx = 1\n```\n\n```python\ny = x + undefined_name\n```\n")
    with pytest.raises(pytest.fail.Exception,
                       match=r"broken\.md, python block 2 \(line 6\) failed: NameError"):
        run_page(page, "broken.md")
    page.write_text("<!-- docs-test: needs a_module_that_is_not_there_xyz -->\n\nA page.\n"
                    "```python\nraise RuntimeError\n```\n")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        run_page(page, "broken.md")
    page.write_text("```python\nx = 1\n```\n<!-- docs-test: needs a_module_not_there_xyz -->\n"
                    "```python\nraise RuntimeError\n```\n```python\nassert x == 1\n```\n")
    run_page(page, "broken.md")  # the block that needs what is missing is left out


def test_needs_marker_skips_when_missing() -> None:
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        _require("a_module_that_is_not_there_xyz")
    with pytest.raises(pytest.skip.Exception, match="does not have"):
        _require("fastrnn.backend.a_function_that_is_not_there")
    _require("fastrnn.backend.clear_session")
    _require("os.path")


def _local_links(path: Path) -> list[tuple[str, str]]:
    """Relative links of a Markdown file as ``(file part, anchor)``, code blocks left out."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    links = []
    for target in (m["target"] for m in LINK.finditer(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            continue  # an absolute URL (or an absolute path: mkdocs refuses those anyway)
        file_part, _, anchor = target.partition("#")
        links.append((file_part, anchor))
    return links


def _anchors(page: Path) -> set[str]:
    """The heading ids mkdocs' toc extension gives a page (lowercase, punctuation dropped)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        anchors.add(re.sub(r"[\s]+", "-", slug))
    return anchors


def test_readme_links_to_the_docs_resolve() -> None:
    links = _local_links(ROOT / "README.md")
    into_docs = [f for f, _ in links if f.startswith("docs/") or f == "mkdocs.yml"]
    assert into_docs, "README.md should link to the documentation (docs/index.md)"
    for file_part, _ in links:
        if file_part:
            assert (ROOT / file_part).exists(), f"README.md links to missing {file_part}"


@pytest.mark.parametrize("page", _pages(), ids=_page_id)
def test_docs_links_resolve(page: Path) -> None:
    for file_part, anchor in _local_links(page):
        target = (page.parent / file_part).resolve() if file_part else page
        assert target.exists(), f"docs/{_page_id(page)} links to missing {file_part}"
        if os.path.commonpath([target, DOCS]) != str(DOCS):
            pytest.fail(f"docs/{_page_id(page)} links to {file_part}, outside docs/: mkdocs "
                        "cannot serve it (name the file in `code` instead)")
        if anchor and target.suffix == ".md" and not _is_api_page(target):
            assert anchor in _anchors(target), (
                f"docs/{_page_id(page)} links to #{anchor}, which {target.name} does not have")
    for snippet in SNIPPET.findall(page.read_text(encoding="utf-8")):
        assert (ROOT / snippet).is_file(), (
            f"docs/{_page_id(page)} includes missing snippet {snippet}")


def _is_api_page(page: Path) -> bool:
    return page.parent.name == "api"  # anchors made by mkdocstrings, checked by mkdocs build


def test_nav_lists_every_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:"):]
    listed = set(re.findall(r"([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE))
    pages = {_page_id(page) for page in _pages()}
    assert listed - pages == set(), f"mkdocs.yml lists missing pages: {sorted(listed - pages)}"
    assert pages - listed == set(), f"pages not in mkdocs.yml's nav: {sorted(pages - listed)}"


def test_benchmark_plots_read_the_sweeps() -> None:
    """The performance page's plots come from benchmarks/RESULTS.md's sweep tables."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_plots", DOCS / "hooks" / "benchmark_plots.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    for title, (_, axis) in hook.SWEEPS.items():
        points = hook.sweep(text, title, axis)
        assert points.pop("fixed"), title
        assert {cell for cell, _ in points} == {"RNN", "LSTM", "GRU"}, title
        assert all(len(values) >= 3 for values in points.values()), title
    table = ("## Kernels: sweep over hidden size\n\n| case (B x T x I x H) | pass | fastrnn | "
             "NumPy |\n|---|---|---|---|\n| LSTM 8x10x2x16 | forward+backward | 1.5 ms | 20 us |"
             "\n| LSTM 8x10x2x16 | forward | 9 s | 1 ms |\n")
    assert hook.sweep(table, "Kernels: sweep over hidden size", 3) == {
        "fixed": "B=8, T=10, I=2", ("LSTM", "fastrnn"): [(16, 1.5)],
        ("LSTM", "NumPy"): [(16, 0.02)]}
    # the report by kernel set: headings one level down, one section per set, best set first;
    # a sweep stops at the next heading, whatever its level
    by_set = ("## Kernel set avx512\n\n### " + table[3:]
              + "\n### Kernels: sweep over batch size\n\n| case (B x T x I x H) | pass | "
              "fastrnn |\n|---|---|---|\n| LSTM 4x10x2x16 | forward+backward | 7 ms |\n"
              "\n## Kernel set avx2\n\n### " + table[3:].replace("1.5 ms", "2.5 ms"))
    assert hook.sweep(by_set, "Kernels: sweep over hidden size", 3) == {
        "fixed": "B=8, T=10, I=2", ("LSTM", "fastrnn"): [(16, 1.5)],
        ("LSTM", "NumPy"): [(16, 0.02)]}
    assert hook.MARKER in (DOCS / "guide" / "performance.md").read_text(encoding="utf-8")
