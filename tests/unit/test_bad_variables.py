"""A bad ORCA_* variable stops `python main.py` (a real process) with status 2 and one line
naming the variable, never a traceback. Config is judged before anything listens or touches
Docker, so no engine is needed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import ConfigError, from_env

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ("ORCA_SCHEDULER", "nope"),
    ("ORCA_STORE", "postgres"),
    ("ORCA_MANAGER_PORT", "http"),
    ("ORCA_WORKER_COUNT", "-1"),
    ("ORCA_LOG_LEVEL", "loud"),
    ("ORCA_WORKERS", "10.0.0.5"),
    ("ORCA_TOKEN", "short"),
    ("ORCA_ALLOWED_IMAGES", "BusyBox"),
    ("ORCA_STATS_INTERVAL", "nan"),
    ("ORCA_DATABASE_URL", "mysql://root@127.0.0.1/orca"),
    ("ORCA_LEASE_TTL", "0"),
    ("ORCA_MANAGER_ADDRESS", "no-port"),
]


@pytest.mark.parametrize("role", [[], ["manager"], ["worker"]], ids=["all", "manager", "worker"])
@pytest.mark.parametrize("name, value", BAD)
def test_a_bad_variable_exits_2_with_one_line_naming_it(tmp_path, role, name, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
    env.update({"ORCA_DATA_DIR": str(tmp_path / "data"), name: value})
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), *role], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("orca: ") and name in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_scheduler_is_one_of_the_strategies():
    assert from_env({"ORCA_SCHEDULER": " Round-Robin "}).scheduler == "round-robin"
    assert from_env({"ORCA_SCHEDULER": "roundrobin"}).scheduler == "round-robin"
    assert from_env({}).scheduler == "spread"
    assert [from_env({"ORCA_SCHEDULER": s}).scheduler for s in ("binpack", "EPVM")] == ["binpack", "epvm"]
    with pytest.raises(ConfigError, match="ORCA_SCHEDULER must be one of spread, binpack, epvm, round-robin, "
                                          "got 'nope'"):
        from_env({"ORCA_SCHEDULER": "nope"})
