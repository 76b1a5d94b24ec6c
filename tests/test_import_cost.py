"""`import polyrl`, listing plugins and validating specs import no backend library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "ray", "stable_baselines3", "tianshou")


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_and_plugin_listing_import_no_backend_library():
    code = (
        "import json, sys, polyrl\n"
        "names = sorted(polyrl.registry().backends())\n"
        f"print(json.dumps([names, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    names, heavy = json.loads(run(code))
    # Other polyrl plugins may be installed too (a third party's, the example ones): only ours must be.
    assert {"rllib", "sb3", "tianshou"} <= set(names) and heavy == []


def test_invalid_spec_fails_before_torch_is_imported():
    code = (
        "import sys, polyrl\n"
        "try:\n"
        "    polyrl.Agent(backend='sb3', algorithm='ppo', gamma=7)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, 'torch' in sys.modules)"
    )
    assert run(code) == "ValidationError False"


def test_unknown_algorithm_fails_before_torch_is_imported():
    code = (
        "import sys, polyrl\n"
        "try:\n"
        "    polyrl.Agent(backend='sb3', algorithm='trpo')\n"
        "except polyrl.errors.UnknownAlgorithmError as exc:\n"
        "    print('ppo' in str(exc), 'torch' in sys.modules)"
    )
    assert run(code) == "True False"
