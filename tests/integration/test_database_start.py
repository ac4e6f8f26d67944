"""A manager given a bad or unreachable ORCA_DATABASE_URL exits 2 at start with one line
naming the variable and the URL without its password; never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from psycopg import conninfo

from tests.integration.conftest import ROOT, free_ports

SECRET = "hunter2-s3cret"


def _run_manager(tmp_path, url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
    env.update({"ORCA_DATA_DIR": str(tmp_path), "ORCA_DATABASE_URL": url,
                "ORCA_MANAGER_PORT": str(free_ports(1))})
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "manager"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def _unreachable(pg_server: str) -> str:
    return f"postgresql://orca:{SECRET}@127.0.0.1:{free_ports(1)}/orca"


def _missing_database(pg_server: str) -> str:
    parts = conninfo.conninfo_to_dict(pg_server)
    return f"postgresql://{parts.get('user', 'postgres')}:{SECRET}@127.0.0.1:{parts['port']}/no_such_db_here"


def _unparsable(pg_server: str) -> str:
    return f"postgresql://orca:{SECRET}@[127.0.0.1/orca"


@pytest.mark.parametrize("make_url", [_unreachable, _missing_database, _unparsable])
def test_a_bad_database_url_exits_2_with_one_line_and_no_password(tmp_path, pg_server, make_url):
    result = _run_manager(tmp_path, make_url(pg_server))
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("orca: ORCA_DATABASE_URL"), result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr
