"""main.py's click group: service roles and client commands behind one entry point."""
import os
import re
import tomllib
from importlib import import_module
from pathlib import Path

import click
import pytest

import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No .env to load and no ORCA_* setting from the caller; the environment is restored after
    (load_dotenv writes to os.environ directly)."""
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("ORCA_")]:
        del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def roles(monkeypatch):
    """Record the role each invocation would run instead of starting services."""
    started = []
    monkeypatch.setattr(main, "run_role", lambda role: started.append(role) or 0)
    return started


@pytest.mark.parametrize("argv, role", [([], "all"), (["manager"], "manager"), (["worker"], "worker")])
def test_roles_start_their_services(roles, argv, role):
    assert main.main(argv) == 0
    assert roles == [role]


@pytest.mark.parametrize("argv", [["bogus"], ["manager", "extra"], ["worker", "--nope"]])
def test_a_bad_command_line_exits_2_with_usage(roles, argv, capsys):
    assert main.main(argv) == 2
    assert "Usage:" in capsys.readouterr().err and roles == []


@pytest.mark.parametrize("role", ["manager", "worker"])
def test_bad_configuration_exits_2_naming_the_variable(monkeypatch, capsys, role):
    monkeypatch.setenv("ORCA_MANAGER_PORT", "abc")
    assert main.main([role]) == 2
    assert capsys.readouterr().err == "orca: ORCA_MANAGER_PORT must be an integer, got 'abc'\n"


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch, capsys):
    (tmp_path / ".env").write_text("ORCA_MANAGER_PORT=abc\nORCA_WORKER_PORT=xyz\n")
    monkeypatch.setenv("ORCA_MANAGER_PORT", "5555")
    assert main.main(["worker"]) == 2
    assert "ORCA_WORKER_PORT must be an integer, got 'xyz'" in capsys.readouterr().err


def test_help_lists_roles_then_client_commands(capsys):
    assert main.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:2] == ["manager", "worker"]
    client = ["run", "status", "stop", "logs", "nodes"]
    assert [name for name in listed if name in client] == client  # other commands may join


def test_client_command_statuses_come_back_from_main(capsys):
    assert main.main(["status", "--manager", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == "orca: cannot reach the manager at http://127.0.0.1:1: connection refused\n"


def test_the_console_script_is_the_same_group():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, attr = project["project"]["scripts"]["orca"].partition(":")
    assert getattr(import_module(module), attr) is main.cli and isinstance(main.cli, click.Group)


def _requirement_lines(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [line for line in lines if line]


def test_pyproject_and_requirements_in_agree_on_the_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = set(_requirement_lines("requirements.in"))
    runtime, test = set(project["dependencies"]), set(project["optional-dependencies"]["test"])
    assert {"click>=8.1", "rich>=13", "flask>=3.0,<4"} <= runtime
    assert runtime | test == requirements, "requirements.in is the runtime and test dependencies"
    assert not runtime & test


def test_the_lock_pins_every_package_exactly_including_each_direct_dependency():
    pins = dict(line.split("==", 1) for line in _requirement_lines("requirements.txt"))
    assert all(version and not any(c in version for c in "<>=,*") for version in pins.values()), pins
    direct = {re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower() for line in _requirement_lines("requirements.in")}
    assert direct <= {name.lower() for name in pins}, direct - set(pins)
    assert pins["pytest"].startswith("8."), "schemathesis 4.32's pytest plugin does not work with pytest 9"