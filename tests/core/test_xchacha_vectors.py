"""XChaCha20-Poly1305, which seals key files (spec 14.1), against the Wycheproof vectors.

``valid`` cases (24-byte nonces) encrypt to ``ct || tag`` and decrypt to ``msg``; ``invalid``
ones (modified tags) fail with ``decrypt_failed``; every other nonce size is refused with
``invalid_key`` both ways. A missing file fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.vectors import all_flags, need, wycheproof_params

from agentauth import AgentAuthError, crypto

XCHACHA_FILE = "wycheproof/xchacha20_poly1305_test.json"
XCHACHA_FLAGS = {
    "Ktv": "valid", "Pseudorandom": "valid", "EdgeCaseCiphertext": "valid",
    "EdgeCasePoly1305": "valid", "EdgeCasePolyKey": "valid", "EdgeCaseTag": "valid",
    "ModifiedTag": "invalid", "InvalidNonceSize": "invalid",
}


def test_xchacha20_poly1305_flags_are_the_documented_ones() -> None:
    assert all_flags(XCHACHA_FILE) == set(XCHACHA_FLAGS)


@pytest.mark.parametrize(("group", "case"), wycheproof_params(XCHACHA_FILE, "xchacha"))
def test_xchacha20_poly1305_wycheproof(group: dict[str, Any] | None,
                                       case: dict[str, Any] | None) -> None:
    group, case = need(group, XCHACHA_FILE), need(case, XCHACHA_FILE)
    for flag in case["flags"]:
        assert XCHACHA_FLAGS.get(flag) == case["result"], f"flag {flag} is not in the policy"
    key, iv, aad, msg, ct, tag = (
        bytes.fromhex(case[name]) for name in ("key", "iv", "aad", "msg", "ct", "tag"))
    assert len(key) == 32 and len(iv) * 8 == group["ivSize"]
    if len(iv) != crypto.XAEAD_NONCE_LEN:
        assert "InvalidNonceSize" in case["flags"] and case["result"] == "invalid"
        with pytest.raises(AgentAuthError) as info:
            crypto.xaead_seal(key, iv, msg, aad)
        assert info.value.code == "invalid_key"
        with pytest.raises(AgentAuthError) as info:
            crypto.xaead_open(key, iv, ct + tag, aad)
        assert info.value.code == "invalid_key"
    elif case["result"] == "valid":
        assert crypto.xaead_seal(key, iv, msg, aad) == ct + tag
        assert crypto.xaead_open(key, iv, ct + tag, aad) == msg
    else:
        with pytest.raises(AgentAuthError) as info:
            crypto.xaead_open(key, iv, ct + tag, aad)
        assert info.value.code == "decrypt_failed"
