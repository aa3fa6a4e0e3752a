"""Drive the static docs site (`sluice docs generate`) in a headless Chromium.

Uses Python Playwright with Debian's chromium (Playwright's own browser builds
cannot be downloaded here): the executable comes from $SLUICE_CHROMIUM or
`chromium` on PATH.

    with DocsPage(site_dir) as p:       # loads file://SITE/index.html
        p.click_node("model.orders")
        p.select_column("amount")
        assert p.highlighted_columns() == [...]
    # leaving the block fails if the page logged any console error or warning,
    # threw, or asked for anything but file: / data: URLs

`check_site(site_dir, screenshot_path, expect)` is the one-call version for a
test of a generated site.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """Path of the Chromium to drive, or None when there is none."""
    env = os.environ.get("SLUICE_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -r tests/python/requirements.txt)"
    if not chromium_path():
        return "no chromium (apt-get install chromium, or set SLUICE_CHROMIUM)"
    return None


_LIST_ATTR = """([sel, attr]) => Array.from(document.querySelectorAll(sel)).map(e => e.getAttribute(attr))"""
_FIND_BY_ATTR = """([sel, attr, value]) => Array.from(document.querySelectorAll(sel)).find(e => e.getAttribute(attr) === value) || null"""


class DocsPage:
    """One page of the docs site in a fresh headless Chromium."""

    def __init__(self, site_dir, viewport=(1280, 800), hash: str = "", strict: bool = True,
                 timeout_ms: int = 15000):
        self.site_dir = Path(site_dir).resolve()
        self.url = (self.site_dir / "index.html").as_uri() + (hash or "")
        self.viewport = viewport
        self.strict = strict
        self.timeout_ms = timeout_ms
        self.console: list[tuple[str, str]] = []   # (type, text) of every console message
        self.problems: list[str] = []              # errors, warnings, page errors, network
        self._pw = None
        self._browser = None
        self.page = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "DocsPage":
        from playwright.sync_api import sync_playwright

        exe = chromium_path()
        if not exe:
            raise RuntimeError(unavailable_reason() or "no chromium")
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            ctx = self._browser.new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]})
            self.page = ctx.new_page()
            self.page.set_default_timeout(self.timeout_ms)
            self.page.on("console", self._on_console)
            self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
            self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
            self.page.on("request", self._on_request)
            self.page.goto(self.url)
            self.page.wait_for_selector("body[data-ready='1']", state="attached")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        if exc_type is None and self.strict:
            self.assert_clean()
        return False

    def close(self):
        if self._browser is not None:
            try:
                self._browser.close()
            finally:
                self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None

    def _on_console(self, msg):
        self.console.append((msg.type, msg.text))
        if msg.type in ("error", "warning", "assert"):
            self.problems.append(f"console {msg.type}: {msg.text}")

    def _on_request(self, req):
        url = req.url
        if not (url.startswith("file:") or url.startswith("data:") or url.startswith("blob:") or url == "about:blank"):
            self.problems.append(f"network request: {url}")

    def assert_clean(self):
        """Fail when the page logged an error or warning, threw, or went to the network."""
        assert not self.problems, "docs page problems:\n  " + "\n  ".join(self.problems)

    # ------------------------------------------------------------ reading
    def _attrs(self, selector: str, attr: str) -> list[str]:
        return self.page.evaluate(_LIST_ATTR, [selector, attr])

    def _find(self, selector: str, attr: str, value: str):
        handle = self.page.evaluate_handle(_FIND_BY_ATTR, [selector, attr, value])
        el = handle.as_element()
        if el is None:
            raise AssertionError(f"no {selector} with {attr}={value!r}")
        return el

    def nodes(self) -> list[str]:
        """data-id of every drawn graph node."""
        return self._attrs("#nodes g.node", "data-id")

    def edges(self) -> list[tuple[str, str]]:
        """(from, to) of every drawn graph edge."""
        return [tuple(x) for x in self.page.evaluate(
            "() => Array.from(document.querySelectorAll('#edges path.edge')).map(e => [e.getAttribute('data-from'), e.getAttribute('data-to')])")]

    def selected_node(self) -> str | None:
        ids = self._attrs("#nodes g.node.selected", "data-id")
        return ids[0] if ids else None

    def columns(self) -> list[str]:
        """Column names listed in the details panel."""
        return self._attrs("#details tr.column", "data-column")

    def selected_column(self) -> str | None:
        names = self._attrs("#details tr.column.selected", "data-column")
        return names[0] if names else None

    def highlighted_nodes(self) -> list[str]:
        """Graph nodes holding an upstream column of the selected column."""
        return self._attrs("#nodes g.node.lineage", "data-id")

    def highlighted_edges(self) -> list[tuple[str, str]]:
        return [tuple(x) for x in self.page.evaluate(
            "() => Array.from(document.querySelectorAll('#edges path.edge.lineage')).map(e => [e.getAttribute('data-from'), e.getAttribute('data-to')])")]

    def highlighted_columns(self) -> list[str]:
        """"NODEID.COLUMN" of every upstream column listed for the selected column."""
        return self._attrs("#details li.upstream-column", "data-ref")

    def upstream_kinds(self) -> dict[str, str]:
        return dict(self.page.evaluate(
            "() => Array.from(document.querySelectorAll('#details li.upstream-column')).map(e => [e.getAttribute('data-ref'), e.getAttribute('data-kind')])"))

    def downstream_columns(self) -> list[str]:
        return self._attrs("#details li.downstream-column", "data-ref")

    def graph_columns(self) -> list[str]:
        """"NODEID.COLUMN" of the upstream column names written on the graph's nodes."""
        return self._attrs("#nodes text.node-col.up", "data-ref")

    def sections(self) -> list[str]:
        """Sections shown in the details panel, in order."""
        return self._attrs("#details section.section[data-section]", "data-section")

    def status_text(self) -> str:
        return self.page.inner_text("#graph-status")

    def prompt_visible(self) -> bool:
        return self.page.is_visible("#graph-empty")

    def view(self) -> dict:
        """The graph's zoom k and pan tx, ty."""
        return self.page.evaluate("() => ({k: window.SLUICE_APP.view.k, tx: window.SLUICE_APP.view.tx, ty: window.SLUICE_APP.view.ty})")

    def hash(self) -> str:
        return self.page.evaluate("() => location.hash")

    # ------------------------------------------------------------ acting
    def click_node(self, node_id: str):
        """Click a drawn graph node (panned into view first)."""
        self.page.evaluate("id => window.SLUICE_APP.reveal(id)", node_id)
        self._find("#nodes g.node", "data-id", node_id).click()
        self.page.wait_for_function(
            "id => { const g = document.querySelector('#nodes g.node.selected'); return g && g.getAttribute('data-id') === id; }",
            arg=node_id)

    def select_column(self, name: str):
        """Click a column row in the details panel."""
        self._find("#details tr.column", "data-column", name).click()
        self.page.wait_for_function(
            "n => { const r = document.querySelector('#details tr.column.selected'); return r && r.getAttribute('data-column') === n; }",
            arg=name)

    def set_depth(self, depth: int):
        self.page.select_option("#depth", str(depth))

    def search(self, text: str) -> tuple[list[str], float]:
        """Type into the search box; return the result ids and the seconds from
        the first keystroke until the list shows the results for the full text."""
        box = self.page.locator("#search")
        box.fill("")
        box.focus()
        start = time.perf_counter()
        box.press_sequentially(text)
        self.page.wait_for_function("q => document.getElementById('results').getAttribute('data-query') === q", arg=text)
        elapsed = time.perf_counter() - start
        return self._attrs("#results li.result", "data-id"), elapsed

    def select_result(self, node_id: str):
        """Click a search result."""
        self._find("#results li.result", "data-id", node_id).click()
        self.page.wait_for_function(
            "id => window.SLUICE_APP.state.selected === id", arg=node_id)

    def goto_hash(self, hash: str):
        self.page.evaluate("h => { location.hash = h; }", hash)
        self.page.wait_for_timeout(50)

    def screenshot(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return Path(path)


def check_site(site_dir, screenshot_path, expect: dict | None = None) -> dict:
    """Open a generated site and check it against `expect`; return what was seen.

    expect keys (all optional):
      project: text the header's project name must equal
      nodes / edges: exact drawn node ids / (from, to) pairs before any selection
      select: a node id to click (search for it first when the graph is large)
      columns: the column names the details panel must then list
      column: a column of that node to select; upstream: the exact
              "NODEID.COLUMN" upstream refs it must list
      sections: details sections that must be shown for the selected node
    Fails on any console error or warning, page error or network request.
    """
    expect = expect or {}
    seen: dict = {}
    with DocsPage(site_dir) as p:
        seen["project"] = p.page.inner_text("#project")
        if "project" in expect:
            assert seen["project"] == expect["project"], seen["project"]
        seen["nodes"] = p.nodes()
        seen["edges"] = p.edges()
        if "nodes" in expect:
            assert sorted(seen["nodes"]) == sorted(expect["nodes"]), seen["nodes"]
        if "edges" in expect:
            assert sorted(seen["edges"]) == sorted(tuple(e) for e in expect["edges"]), seen["edges"]
        sel = expect.get("select")
        if sel:
            if sel not in seen["nodes"]:
                p.search(sel)
                p.select_result(sel)
            else:
                p.click_node(sel)
            seen["columns"] = p.columns()
            seen["sections"] = p.sections()
            if "columns" in expect:
                assert seen["columns"] == list(expect["columns"]), seen["columns"]
            for s in expect.get("sections", []):
                assert s in seen["sections"], (s, seen["sections"])
            if expect.get("column"):
                p.select_column(expect["column"])
                seen["upstream"] = p.highlighted_columns()
                if "upstream" in expect:
                    assert sorted(seen["upstream"]) == sorted(expect["upstream"]), seen["upstream"]
        p.screenshot(screenshot_path)
        seen["console"] = list(p.console)
    return seen
