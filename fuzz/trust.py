"""Trust stores (spec 14.3): the TOML text of a trust store, parsed and written back.

The first byte chooses how the bytes become text (UTF-8 with replacement, or with lone
surrogates kept, as a caller's ``str`` may hold them); the rest is the text. A store that
parses must write itself out as text that parses back to the same entries, and the edit a
save makes of the text (keeping its comments), with its first entry removed, must be
text that parses back to the store saved, or none (written afresh then).
"""

from __future__ import annotations

from agentauth.errors import AgentAuthError
from agentauth.keys.trust import TrustStore
from agentauth.keys.trustfile import by_kind, edit_text

from ._common import run, vectors


def one(data: bytes) -> None:
    """Parse ``data[1:]`` as a trust store and write it back."""
    if not data:
        return
    text = data[1:].decode("utf-8", "surrogateescape" if data[0] & 1 else "replace")
    try:
        store = TrustStore.parse(text)
    except AgentAuthError:
        return
    again = TrustStore.parse(store.dumps())
    assert again.entries == store.entries, (store.entries, again.entries)
    smaller = store.remove(store.entries[0].name) if store.entries else store
    edited = edit_text(text, smaller.entries)
    if edited is not None:
        assert by_kind(TrustStore.parse(edited).entries) == by_kind(smaller.entries)


def seeds() -> list[bytes]:
    """The trust stores of the rotation vectors, before and after each rotation."""
    texts = {v[k] for v in vectors("keys") if v["kind"] == "rotation"
             for k in ("store", "store_after") if k in v}
    return [bytes([0]) + t.encode("utf-8") for t in sorted(texts)]


if __name__ == "__main__":
    run(one, seeds)
