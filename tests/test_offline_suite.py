"""The suite itself: it never reaches the Hugging Face Hub, whatever the shell it runs in sets."""
from __future__ import annotations


def test_the_hub_client_is_offline_for_every_test():
    """Set by a test, HF_HUB_OFFLINE came too late: the client had read it at import, and a load from the local
    cache still asked huggingface.co for its request headers first."""
    import huggingface_hub.constants as constants

    assert getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)()
