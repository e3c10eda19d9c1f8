"""The allowed dependencies between forecast's packages (docs/architecture.md, "Layout").

The import graph is read from the source with ``ast``, function-level imports included: an import
moved into a function to dodge a cycle still counts here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src"

LOWER = (
    "forecast.data",
    "forecast.features",
    "forecast.tracking",
    "forecast.models",
)
"""Canonical data, point-in-time features, tracking reports and the modelling code (estimators)."""
TRAINING = ("forecast.training",)
"""Training (the training input, fitting and evaluation, the card, the job): above the modelling code."""
TRAINING_JOB = ("forecast.training.job",)
"""The one module of training that is orchestration: it logs to MLflow through the registry."""
SCORING = ("forecast.scoring",)
"""Pure scoring (scores, bands, reasons, close dates; no I/O): above the modelling code, below the
jobs and the front ends that share it."""
ORCHESTRATION = (
    "forecast.cli",
    "forecast.serving",
    "forecast.dashboard",  # the third front end: read-only pages over the jobs
    *TRAINING_JOB,  # the training job
    "forecast.batch",  # the batch scoring job
    "forecast.crm_export",  # forecast export scores: stored scores as CRM import files
    "forecast.sync",  # forecast sync: ingest, rescore and export new CRM exports in a loop
    "forecast.main_job",  # forecast run: the other jobs in order
    "forecast.registry",
    "forecast.binding",
    "forecast.flags",
    "forecast.monitoring",
    "forecast.revenue",
    "forecast.robustness",
)
"""Jobs, MLflow and the three front ends: what the lower layers must never reach up to."""
LEAVES = {
    "forecast.config": set(),
    "forecast.errors": set(),
    "forecast.logging": set(),
    "forecast.categories": set(),
    "forecast.yaml_config": set(),
    "forecast.timeutil": {"forecast.errors"},
    "forecast.models.names": set(),
    "forecast.evaluate": set(),  # metrics of probability scores: models, training, registry, monitoring
}
"""Modules everything may import; what each of them may import from forecast."""

KNOWN_CYCLES: list[set[str]] = []
"""Import cycles between modules that exist today. A new one fails the test; when one is broken,
remove it here. (``models.pipeline`` <-> ``explain`` <-> ``fastpath`` was one, issue 20.)"""
KNOWN_PACKAGE_CYCLES: list[set[str]] = []
"""Cycles between top-level packages and modules (``models`` <-> ``train`` was one, issue 20; and
``training`` <-> ``registry`` would be one if the registry imported the training result's class)."""


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (SRC / "forecast").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _owner(name: str) -> str | None:
    """The module ``name`` lives in (``forecast.models.pipeline.X`` -> ``forecast.models.pipeline``)."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Each forecast module and the forecast modules it imports (anywhere in its body)."""
    graph: dict[str, frozenset[str]] = {}
    for module, path in _modules().items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {_owner(a.name) for a in node.names if a.name.split(".")[0] == "forecast"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] != "forecast":
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in _modules() else _owner(base))
        graph[module] = frozenset(d for d in deps if d is not None and d != module)
    return graph


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycles(graph: dict[str, frozenset[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _violations(importers: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    graph = import_graph()
    return sorted(
        f"{m} imports {d}" for m in graph if _within(m, importers) for d in graph[m] if _within(d, forbidden)
    )


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "forecast.flags.job" in graph["forecast.batch"]  # imported inside score_job
    assert "forecast.cli.main" in graph["forecast.cli.models"]


def test_lower_layers_never_import_the_orchestration() -> None:
    assert _violations(LOWER, ORCHESTRATION) == []


def test_lower_layers_never_import_scoring() -> None:
    assert _violations(LOWER, SCORING) == []


def test_lower_layers_never_import_training() -> None:
    assert _violations(LOWER, TRAINING) == []


def test_training_is_pure_but_its_job() -> None:
    """Fitting, evaluation and the card import no orchestration nor scoring; the job only the registry."""
    graph = import_graph()
    pure = sorted(
        f"{m} imports {d}"
        for m, deps in graph.items()
        if _within(m, TRAINING) and not _within(m, TRAINING_JOB)
        for d in deps
        if _within(d, [*ORCHESTRATION, *SCORING])
    )
    assert pure == []
    beyond = [d for d in _violations(TRAINING_JOB, [*ORCHESTRATION, *SCORING]) if not d.endswith("registry")]
    assert beyond == []
    assert "forecast.registry" in graph["forecast.training.job"]


def test_neither_the_registry_nor_scoring_imports_training() -> None:
    """The registry logs any :class:`~forecast.registry.TrainedModel`; scoring reads a fitted model."""
    assert _violations(["forecast.registry", *SCORING], TRAINING) == []


def test_scoring_is_pure() -> None:
    """Scoring reads no warehouse, registry or file: it never imports the jobs or the front ends."""
    assert _violations(SCORING, ORCHESTRATION) == []


def test_serving_imports_pure_scoring_never_a_job() -> None:
    """The service scores with ``scoring``, never the batch job nor training: it serves, it does not fit."""
    assert _violations(["forecast.serving"], ["forecast.batch", *TRAINING]) == []
    graph = import_graph()
    assert any(_within(d, SCORING) for d in graph["forecast.serving.scoring"])


def test_serving_never_imports_the_cli() -> None:
    assert _violations(["forecast.serving"], ["forecast.cli"]) == []


def test_only_the_cli_imports_the_cli() -> None:
    graph = import_graph()
    outside = sorted(
        f"{m} imports {d}"
        for m, deps in graph.items()
        if not _within(m, ["forecast.cli"])
        for d in deps
        if _within(d, ["forecast.cli"])
    )
    assert outside == []


def test_the_dashboard_is_a_front_end_only_the_cli_imports() -> None:
    """The dashboard reads through the jobs, never the CLI, fits nothing, never imports the service.

    Only the CLI's ``forecast dashboard``, the service's mount of the same app
    (``serving.dashboard_mount``, issue 18 item 1) and the main job, whose last step computes the
    pages into their store (``forecast dashboard --prepare``), import it.
    """
    assert _violations(["forecast.dashboard"], ["forecast.cli", "forecast.batch", *TRAINING]) == []
    assert _violations(["forecast.dashboard"], ["forecast.serving"]) == []
    graph = import_graph()
    importers = sorted(
        m
        for m, deps in graph.items()
        if not _within(m, ["forecast.dashboard"]) and any(_within(d, ["forecast.dashboard"]) for d in deps)
    )
    assert importers == ["forecast.cli.dashboard", "forecast.main_job", "forecast.serving.dashboard_mount"]


def test_leaf_modules_import_almost_nothing() -> None:
    graph = import_graph()
    for module, allowed in LEAVES.items():
        assert set(graph[module]) <= allowed, module


def test_no_new_import_cycle() -> None:
    graph = import_graph()
    assert sorted(map(sorted, _cycles(graph))) == sorted(map(sorted, KNOWN_CYCLES))
    merged: dict[str, set[str]] = {}
    for module, deps in graph.items():
        merged.setdefault(_top(module), set()).update(_top(d) for d in deps if _top(d) != _top(module))
    frozen = {k: frozenset(v) for k, v in merged.items()}
    assert sorted(map(sorted, _cycles(frozen))) == sorted(map(sorted, KNOWN_PACKAGE_CYCLES))


def test_architecture_doc_names_every_package_and_top_level_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    root = SRC / "forecast"
    packages = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"
    )
    missing = [p for p in packages if f"{p.rsplit('/', 1)[-1]}/" not in layout]
    modules = [p.name for p in root.glob("*.py") if p.name != "__init__.py"]
    missing += [m for m in modules if m not in layout]
    assert missing == [], "docs/architecture.md's layout does not name these"
