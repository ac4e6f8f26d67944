"""Security settings of common.config: ORCA_TOKEN, ORCA_ALLOWED_IMAGES and the loopback-only default."""
import pytest

from common.config import ConfigError, check_binding, from_env, is_loopback

TOKEN = "s3cr3t-token-" + "x" * 20


def test_token_and_allowed_images_are_empty_by_default():
    config = from_env({})
    assert config.token == ""
    assert config.allowed_images == ()


def test_token_is_read_and_never_in_repr():
    config = from_env({"ORCA_TOKEN": f"  {TOKEN}  "})
    assert config.token == TOKEN
    assert TOKEN not in repr(config) and TOKEN not in str(config)


@pytest.mark.parametrize("raw", ["short", "x" * 15, "has a space in it!!", "tab\tinside-the-token",
                                 "ünïcödé-token-long", "x" * 1025])
def test_a_weak_or_unsendable_token_is_refused_without_echoing_it(raw):
    with pytest.raises(ConfigError) as raised:
        from_env({"ORCA_TOKEN": raw})
    message = str(raised.value)
    assert "ORCA_TOKEN" in message and "secrets.token_urlsafe" in message
    assert raw.strip() not in message


def test_allowed_images_are_comma_separated_patterns():
    config = from_env({"ORCA_ALLOWED_IMAGES": " busybox* , registry.local/*,, "})
    assert config.allowed_images == ("busybox*", "registry.local/*")


@pytest.mark.parametrize("raw", ["busy box", "a\x00b", "x" * 600, "BusyBox", "busybox@sha256:*",
                                 "registry.example:port/app", "busybox:", "-busybox"])
def test_a_bad_image_pattern_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="ORCA_ALLOWED_IMAGES"):
        from_env({"ORCA_ALLOWED_IMAGES": raw})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]", ""])
@pytest.mark.parametrize("variable", ["ORCA_MANAGER_HOST", "ORCA_WORKER_HOST"])
def test_loopback_hosts_need_no_token(variable, host):
    config = from_env({variable: host})
    bound = config.manager_host if variable == "ORCA_MANAGER_HOST" else config.worker_host
    assert bound == (host or "127.0.0.1")  # kept as given ("" means the default, 127.0.0.1)
    assert config.token == "" and is_loopback(bound)
    check_binding(config, "all")  # raises ConfigError for any host that is not loopback (see below)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.0.0.5", "192.168.1.20", "example.com",
                                  "localhost.example.com", "127.0.0.1.nip.io"])
@pytest.mark.parametrize("variable", ["ORCA_MANAGER_HOST", "ORCA_WORKER_HOST"])
def test_other_hosts_refuse_to_start_without_a_token_and_say_how_to_set_one(variable, host):
    with pytest.raises(ConfigError) as raised:
        from_env({variable: host})
    message = str(raised.value)
    assert variable in message and "export ORCA_TOKEN=" in message


@pytest.mark.parametrize("variable", ["ORCA_MANAGER_HOST", "ORCA_WORKER_HOST"])
def test_other_hosts_start_with_a_token(variable):
    assert from_env({variable: "0.0.0.0", "ORCA_TOKEN": TOKEN}).token == TOKEN


def test_check_binding_looks_only_at_the_hosts_of_the_role():
    config = from_env({"ORCA_TOKEN": TOKEN, "ORCA_WORKER_HOST": "0.0.0.0"})
    open_worker = type(config)(**{**config.__dict__, "token": ""})
    check_binding(open_worker, "manager")
    with pytest.raises(ConfigError, match="ORCA_WORKER_HOST"):
        check_binding(open_worker, "worker")
    with pytest.raises(ConfigError, match="ORCA_WORKER_HOST"):
        check_binding(open_worker, "all")


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("0.0.0.0", False), ("", False), ("::ffff:10.0.0.1", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
