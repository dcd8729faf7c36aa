"""What importing each package loads, and which package may import which (issue 15).

The SDK depends on the local network only in its testing kit; importing the SDK, its pytest
plugin or the local network loads no more than they need (PEP 562 lazy names).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
RUN_TIMEOUT_S = 60.0
#: Modules that mean "the whole SDK / the realtime client was loaded".
HEAVY = ("pubnub", "aiohttp", "blocks_network.consumer", "blocks_network.agent")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import``/``from ... import`` statement in ``path`` names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_sdk_imports_the_local_network_only_in_its_testing_kit() -> None:
    sdk = SRC / "blocks_network"
    offenders = sorted(
        f"{path.relative_to(SRC)}: {module}"
        for path in sdk.rglob("*.py")
        if "testing" not in path.relative_to(sdk).parts[:1]
        for module in imported_modules(path)
        if module == "blocks_devnet" or module.startswith("blocks_devnet.")
    )
    assert offenders == []


def test_the_boundary_check_sees_a_local_network_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from blocks_devnet.cli import devnet\n")
    assert "blocks_devnet.cli" in imported_modules(probe)


def loaded_after(statement: str) -> set[str]:
    """The HEAVY packages (top level) a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint(sorted(sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    modules = ast.literal_eval(result.stdout.strip())
    return {heavy for heavy in HEAVY if heavy in modules}


@pytest.mark.parametrize(
    "statement",
    ["import blocks_network", "import blocks_network.testing.plugin", "import blocks_network.cli"],
)
def test_importing_the_sdk_loads_neither_realtime_client_nor_runtime(statement: str) -> None:
    assert loaded_after(statement) == set()


def test_importing_the_local_network_loads_no_sdk_client_code() -> None:
    # aiohttp is the local network's own server; the SDK's client side stays unloaded.
    assert loaded_after("import blocks_devnet.network") == {"aiohttp"}


def test_a_public_name_is_imported_on_first_use() -> None:
    assert "blocks_network.consumer" in loaded_after("from blocks_network import TaskClient")
