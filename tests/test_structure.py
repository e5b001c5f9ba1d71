"""The package's shape: no import cycles, experiments independent of each other, the library
independent of the experiments, launch/ using no experiment's private helpers."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import in the file, function-level ones included."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
    return out


def _graph(package: str = "dg_jax") -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {m: set() for m in files}
    for mod, path in files.items():
        for target, names in _imports(path):
            for cand in [f"{target}.{n}" for n in names] + [target]:
                if cand in files and cand != mod:
                    graph[mod].add(cand)
                    break
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_library_does_not_import_experiments():
    graph = _graph()
    bad = sorted((m, t) for m, ts in graph.items() for t in ts
                 if not m.startswith("dg_jax.experiments") and t.startswith("dg_jax.experiments"))
    assert bad == []


def test_experiments_import_only_the_kit_and_themselves():
    graph = _graph()
    bad = []
    for m, targets in graph.items():
        parts = m.split(".")
        if len(parts) < 4 or parts[1] != "experiments" or parts[2] == "kit":
            continue
        for t in targets:
            tp = t.split(".")
            if tp[:2] == ["dg_jax", "experiments"] and len(tp) > 2 and tp[2] not in (
                    parts[2], "kit"):
                bad.append((m, t))
    assert bad == []


def test_launch_reaches_experiments_only_through_the_registry():
    """launch/ is thin: it runs an experiment by name, and what else it needs (the benchmark's
    networks and samplers) comes from the library."""
    bad = [(path.name, target, names) for path in (ROOT / "launch").glob("*.py")
           for target, names in _imports(path)
           if target.startswith("dg_jax.experiments") and target != "dg_jax.experiments.registry"]
    assert bad == []
