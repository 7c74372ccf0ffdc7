"""The package's layout as README's Layout section draws it: imports go one way, the shared rooms stand alone."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hf_seqkd"
# The model's own files are copied next to saved weights for trust_remote_code: they may import only each other.
MODEL_CODE = {"configuration_lstm_seq2seq", "modeling_lstm_seq2seq", "sparse_weights"}
# The rooms everything else stands on import nothing from hf_seqkd.
FOUNDATIONS = {"utils", "modes", "resources", "checks", "tokenization"}


def internal_imports() -> dict[str, set[str]]:
    """Each module of hf_seqkd and the hf_seqkd modules it imports (relative imports, as the package writes them)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported.add(node.module)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_seqkd"):
                imported.add(node.module.removeprefix("hf_seqkd").lstrip(".") or "__init__")
        graph[path.stem] = imported
    return graph


def test_imports_have_no_cycle():
    graph = internal_imports()
    done, path = set(), []

    def visit(module):
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        path.append(module)
        for imported in graph.get(module, ()):
            visit(imported)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_foundations_and_model_code_stand_alone():
    graph = internal_imports()
    assert MODEL_CODE | FOUNDATIONS <= set(graph)
    for module in FOUNDATIONS:
        assert graph[module] == set(), f"{module} imports {graph[module]}"
    for module in MODEL_CODE:
        assert graph[module] <= MODEL_CODE, f"{module} imports {graph[module] - MODEL_CODE}"


def test_no_module_imports_a_recipe_level_one():
    """The library's lower rooms never reach up: no module imports `training`, `arguments` or `table1` but those that
    compose the recipes' pieces (`training` builds on `arguments`)."""
    graph = internal_imports()
    upward = {
        module: imported & {"training", "arguments", "table1", "cli"}
        for module, imported in graph.items()
        if module not in ("__init__", "training")
    }
    assert {module: found for module, found in upward.items() if found} == {}
