"""Is the Hugging Face hub reachable? One quick probe per process, then offline mode if not.

huggingface_hub and datasets retry a failed request five times with backoff (about 23 s) and
every acbench loader that may use the hub would pay that again. When a TCP connection to the
hub endpoint cannot even be opened, this module switches the process to the libraries' own
offline mode (as ``HF_HUB_OFFLINE=1`` would), so locally cached hub files still load and
everything else fails at once into the loaders' offline fallbacks.

The probe is skipped (the hub counts as reachable) when a proxy is configured, since a direct
connection says nothing about a proxied one.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_requested() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``)."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in _OFFLINE_VARS)


@functools.lru_cache(maxsize=1)
def unreachable_reason() -> str | None:
    """Why the hub cannot be reached (``None`` when it can, or when that cannot be told)."""
    if any(os.environ.get(name) for name in _PROXY_VARS):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    host = endpoint.hostname
    if not host:
        return None
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})"


def available() -> bool:
    """Whether hub downloads are worth trying; switches the process to offline mode if not."""
    if offline_requested():
        return False
    reason = unreachable_reason()
    if reason is None:
        return True
    _go_offline(reason)
    return False


def _go_offline(reason: str) -> None:
    for name in _OFFLINE_VARS:
        os.environ[name] = "1"
    # Both libraries read the variables once, at import; set their module constants as well.
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        pass
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        pass
    log.warning("Hugging Face hub unreachable (%s): working offline, only locally cached hub files "
                "are used", reason)
