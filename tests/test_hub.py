"""The hub probe: one quick TCP connect decides whether hub downloads are tried at all."""

import os
import socket

import pytest

from lm_eval_acbench import hub


@pytest.fixture
def probe(monkeypatch):
    """A clean probe: no proxies, offline mode off (restored afterwards), cache cleared."""
    import datasets.config
    from huggingface_hub import constants

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    probe_fn = hub.unreachable_reason  # tests may replace it; the cache belongs to the original
    probe_fn.cache_clear()
    yield monkeypatch
    probe_fn.cache_clear()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_switches_the_process_to_offline_mode(probe, caplog):
    from huggingface_hub import constants

    probe.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert "cannot connect to 127.0.0.1" in hub.unreachable_reason()
    assert hub.available() is False
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert "working offline" in caplog.text


def test_listening_endpoint_counts_as_reachable(probe):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        probe.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.unreachable_reason() is None
        assert hub.available() is True
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_a_proxy_skips_the_probe(probe):
    probe.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    probe.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub.unreachable_reason() is None


def test_user_offline_setting_wins_without_probing(probe):
    probe.setenv("HF_HUB_OFFLINE", "1")
    probe.setattr(hub, "unreachable_reason", lambda: pytest.fail("probed although offline was asked for"))
    assert hub.available() is False
