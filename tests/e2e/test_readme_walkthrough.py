"""The README's curl walk-through, executed verbatim against a live `lipspline serve`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import Deployment, embedded_env

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_script() -> str:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S)
    assert match, "README has no walkthrough block"
    return match.group(1)


def test_readme_walkthrough_runs_against_a_live_server(tmp_path: Path) -> None:
    for tool in ("curl", "jq", "bash"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to run the README walk-through")
    env = embedded_env(tmp_path)
    with Deployment(env, tmp_path, embedded=True).running() as deployment:
        # from a directory that is not the data dir's parent, with the key exported as `lipspline serve` says
        shell_env = dict(os.environ, LIPSPLINE_URL=deployment.url, LIPSPLINE_API_KEY=deployment.api_key)
        shell_env.pop("LIPSPLINE_DATA_DIR", None)
        shell_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + shell_env["PATH"]
        script = "set -euo pipefail\n" + walkthrough_script()
        result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=shell_env, capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr + deployment.logs()
    prediction = json.loads((tmp_path / "prediction.json").read_text())
    assert prediction["predictions"] == [1, 0]  # centre inside the circle, corner outside
    bound = prediction["lipschitz_bound"]
    assert bound > 0 and prediction["output_bound"] >= 0.05 * bound
    assert all(r > 0 for r in prediction["certified_radius"])
    assert '"certified"' in result.stdout and '"local_radius"' in result.stdout
    assert '"type":"final"' in result.stdout and '"epoch":40' in result.stdout  # followed live over SSE
