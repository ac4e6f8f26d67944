"""Configuration parsing (common.config.from_env): defaults from ARCHITECTURE.md, errors name the variable."""
import pytest

from common.config import Config, ConfigError, from_env


def test_defaults_match_the_architecture_table():
    config = from_env({})
    assert (config.manager_host, config.manager_port) == ("127.0.0.1", 5555)
    assert (config.worker_host, config.worker_port) == ("127.0.0.1", 5556)
    assert config.worker_count == 2
    assert config.workers == ()
    assert config.log_level == "info"


def test_empty_values_mean_defaults():
    env = {name: "" for name in ("ORCA_MANAGER_HOST", "ORCA_MANAGER_PORT", "ORCA_WORKER_HOST",
                                 "ORCA_WORKER_PORT", "ORCA_WORKER_COUNT", "ORCA_WORKERS", "ORCA_LOG_LEVEL")}
    assert from_env(env) == from_env({})


def test_values_are_read():
    config = from_env({
        "ORCA_MANAGER_HOST": "0.0.0.0", "ORCA_MANAGER_PORT": "7000",
        "ORCA_WORKER_HOST": "10.0.0.2", "ORCA_WORKER_PORT": " 7001 ",
        "ORCA_WORKER_COUNT": "0", "ORCA_WORKERS": "a:1, b.example:2 ,", "ORCA_LOG_LEVEL": "DEBUG",
        "ORCA_TOKEN": "t" * 32,  # listening beyond loopback needs one
    })
    assert (config.manager_host, config.manager_port) == ("0.0.0.0", 7000)
    assert (config.worker_host, config.worker_port) == ("10.0.0.2", 7001)
    assert config.worker_count == 0
    assert config.workers == ("a:1", "b.example:2")
    assert config.log_level == "debug"
    assert config.worker_address(2) == "10.0.0.2:7003"


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        from_env({}).manager_port = 1  # type: ignore[misc]
    assert isinstance(from_env({}), Config)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORCA_MANAGER_PORT", "abc"),
        ("ORCA_MANAGER_PORT", "70000"),
        ("ORCA_MANAGER_PORT", "-1"),
        ("ORCA_MANAGER_PORT", "55.5"),
        ("ORCA_WORKER_PORT", "http"),
        ("ORCA_WORKER_COUNT", "two"),
        ("ORCA_WORKER_COUNT", "-1"),
        ("ORCA_WORKER_COUNT", "1000"),
        ("ORCA_WORKERS", "localhost"),
        ("ORCA_WORKERS", "a:1,b"),
        ("ORCA_WORKERS", ":5556"),
        ("ORCA_WORKERS", "host:port"),
        ("ORCA_WORKERS", "host:0"),
        ("ORCA_WORKERS", "host:65536"),
        ("ORCA_LOG_LEVEL", "loud"),
        ("ORCA_LOG_LEVEL", "5"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        from_env({name: value})
    assert name in str(raised.value)


def test_bad_workers_entry_is_quoted():
    with pytest.raises(ConfigError, match="'b'"):
        from_env({"ORCA_WORKERS": "a:1,b"})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_managers_on_a_database_listening_on_a_wildcard_must_say_where_they_are():
    shared = {"ORCA_DATABASE_URL": "postgresql://orca@127.0.0.1/orca", "ORCA_MANAGER_HOST": "0.0.0.0",
              "ORCA_TOKEN": "t" * 32}
    with pytest.raises(ConfigError, match="ORCA_MANAGER_ADDRESS"):
        from_env(shared)
    assert from_env({**shared, "ORCA_MANAGER_ADDRESS": "10.0.0.5:5555"}).manager_address == "10.0.0.5:5555"
    assert from_env({**shared, "ORCA_MANAGER_HOST": "127.0.0.1"}).manager_host == "127.0.0.1"
