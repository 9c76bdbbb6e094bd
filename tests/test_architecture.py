"""The layers of docs/architecture.md, checked on the import statements (ast, every import,
module level, inside a function or under TYPE_CHECKING): who may import whom, no two-way
tie and no circle between packages, none between the codec's modules, and no private name
imported from another module."""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.helpers import ROOT

TOPS = ("textboost", "uplink", "downlink", "link_sim", "export")


def _unit(module: str) -> str | None:
    """A package of the graph: a top package, or textboost's subpackage / top module."""
    parts = module.split(".")
    if parts[0] not in TOPS:
        return None
    if parts[0] != "textboost" or len(parts) == 1:
        return parts[0]
    return "textboost." + parts[1]


def _modules():
    """(module name, its import nodes) of every module of the top packages."""
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            yield name, [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (``from textboost import X``: textboost.X when
    X is a subpackage or module, else textboost itself)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not node.module or node.level:
        return []
    if node.module != "textboost":
        return [node.module]
    return [f"textboost.{a.name}" if (ROOT / "textboost" / a.name).is_dir()
            or (ROOT / "textboost" / f"{a.name}.py").is_file() else "textboost"
            for a in node.names]  # fmt: skip


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in _modules():
        src = _unit(module)
        for node in imports:
            for name in _imported(node):
                dst = _unit(name)
                if dst and dst != src:
                    edges[src].add(dst)  # type: ignore[index]
    return edges


def module_graph(package: str) -> dict[str, set[str]]:
    """Imports between the modules of one package (``textboost.codec``)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in _modules():
        if module.startswith(package + "."):
            for node in imports:
                edges[module] |= {n for n in _imported(node) if n.startswith(package + ".")}
    return edges


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = import_graph()


def _imports(src: str) -> set[str]:
    return GRAPH.get(src, set())


def test_the_nodes_meet_only_through_packets():
    assert "downlink" not in _imports("uplink")
    assert "uplink" not in _imports("downlink")


def test_foundations_import_nothing_of_the_method():
    method = {"textboost.codec", "textboost.text", "textboost.fusion", "textboost.train",
              "textboost.eval", "uplink", "downlink", "link_sim", "export"}  # fmt: skip
    for low in ("textboost.bitstream", "textboost.capture", "textboost.protocol",
                "textboost.blocks"):  # fmt: skip
        assert not _imports(low) & method, (low, _imports(low))


def test_the_bytes_format_stands_alone():
    """textboost/bitstream imports nothing of the project but itself, and no torch or numpy:
    a node reads a header without loading the method."""
    assert not _imports("textboost.bitstream")
    for path in (ROOT / "textboost" / "bitstream").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            assert not {n.split(".")[0] for n in names} & {"torch", "numpy", "PIL"}, path


def test_settings_are_below_the_nodes_and_the_simulator():
    assert not _imports("textboost.settings") & {"uplink", "downlink", "link_sim",
                                                  "textboost.field", "textboost.cli"}


def test_runtime_never_imports_training():
    for src in ("uplink", "downlink", "textboost.codec", "textboost.text", "textboost.fusion",
                "textboost.protocol", "textboost.field", "textboost.settings",
                "textboost.pipeline", "textboost.blocks", "textboost.scenetext", "link_sim"):
        assert not _imports(src) & {"textboost.train", "textboost.eval"}, src


def test_no_two_way_ties_and_no_circles():
    ties = {tuple(sorted((a, b))) for a in GRAPH for b in GRAPH[a] if a in GRAPH.get(b, ())}
    assert not ties, ties
    assert not circles(GRAPH), circles(GRAPH)


def test_the_codec_is_only_a_codec():
    """The codec imports neither the text side channel, the fusion block nor the pipeline
    that composes them; the fusion block and the text side channel import no codec."""
    above = {"textboost.text", "textboost.fusion", "textboost.pipeline"}
    assert not _imports("textboost.codec") & above, _imports("textboost.codec")
    for src in ("textboost.fusion", "textboost.text", "textboost.blocks"):
        assert not _imports(src) & {"textboost.codec", "textboost.pipeline"}, src


def test_only_the_composers_import_the_pipeline():
    """The pipeline sits above the method: nothing of the method, the format, the settings
    or the protocol imports it."""
    for src in ("textboost.codec", "textboost.text", "textboost.fusion", "textboost.blocks",
                "textboost.bitstream", "textboost.protocol", "textboost.settings",
                "textboost.scenetext"):  # fmt: skip
        assert "textboost.pipeline" not in _imports(src), src


def test_no_circle_between_the_codecs_modules():
    """api imports budget, refine, estimate and rate; none of them imports api back
    (TYPE_CHECKING imports included): they see the codec through codec/analysis.py."""
    graph = module_graph("textboost.codec")
    assert not circles(graph), circles(graph)


def test_the_simulator_and_training_stay_apart_from_evaluation():
    """link_sim scores words with textboost.scenetext, not with the evaluation; training
    reads ground truth there too, so evaluation may draw training's scenes one way only."""
    assert not _imports("link_sim") & {"textboost.eval", "textboost.train"}
    assert "textboost.eval" not in _imports("textboost.train")
    assert not _imports("textboost.scenetext") & {"textboost.eval", "textboost.train",
                                                   "link_sim"}  # fmt: skip


def test_no_private_name_is_imported_from_another_module():
    found = []
    for module, imports in _modules():
        for node in imports:
            if not isinstance(node, ast.ImportFrom) or node.module in (None, module):
                continue
            if _unit(node.module):
                found += [f"{module}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    assert not found, found
