"""``custom_rest``: nodes behind any HTTP service speaking the QCOS REST protocol.

:mod:`providers.custom_rest.client` holds the provider and describes the protocol;
:mod:`providers.custom_rest.server` is the reference server (``python -m providers.custom_rest``).
"""

from providers.custom_rest.client import CustomRestProvider

__all__ = ["CustomRestProvider"]
