"""The public surface and the layering rules of the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import agentauth

PACKAGE = Path(agentauth.__file__).resolve().parent

EXPECTED_EXPORTS = {
    "ERROR_CODES", "REPLAY_WINDOW", "AgentAuthError", "AuthenticationError",
    "CounterExhausted", "DecodeError", "HandshakePolicy", "HandshakeResult",
    "HandshakeState", "HandshakeTimeout", "Identity", "Initiator", "InvalidAgentId",
    "InvalidArgument", "InvalidKey", "InvalidState", "LocalError", "PeerKey",
    "ProtocolViolation", "RemoteError", "ReplayDetected", "Responder", "Role", "Session",
    "__version__", "accept_any_peer", "format_agent_id", "parse_agent_id",
    "AgentAuthAttribute", "AgentAuthListener", "AgentAuthMessageStream", "AgentAuthStream",
    "SessionExpired", "StoreError", "TransportError", "AsyncReplayStore",
    "async_replay_store", "MemoryReplayStore", "RedisReplayStore", "ReplayStore",
    "SQLiteReplayStore", "Envelope", "PendingRequests", "check_envelope", "open_envelope",
    "seal", "connect", "create_listener", "serve",
    "CapabilityDenied",
    "KeyFileError", "TrustStoreError", "AuditLogError", "TrustStore", "FileError",
}

# Layer of each module: a module may import only from its own layer or lower ones.
LAYERS = {
    "errors": 0, "crypto": 1, "wire": 1, "identity": 2, "noise": 2, "stores": 2, "envelope": 3,
    "session": 3, "capability": 3, "handshake": 4, "conformance": 5, "aio": 5, "http": 5,
    "cli": 6, "cli_tokens": 6, "cli_conformance": 6, "__main__": 7, "__init__": 7,
    "keyfile": 2, "audit": 2, "rotation": 3, "trust": 4, "cli_common": 6, "cli_keys": 6,
    "verdict": 1, "files": 1, "_version": 0,
}
# Third-party imports that only one module may make.
OWNERS = {"nacl": "crypto", "cryptography": "crypto", "msgpack": "wire", "anyio": "aio",
          "hashlib": "crypto", "hmac": "crypto", "redis": "stores", "http_sf": "http",
          "httpx": "http"}


def test_public_exports_are_exactly_the_documented_set() -> None:
    assert set(agentauth.__all__) == EXPECTED_EXPORTS
    for name in agentauth.__all__:
        assert getattr(agentauth, name) is not None, name


def test_public_names_have_docstrings() -> None:
    for name in agentauth.__all__:
        obj = getattr(agentauth, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in ``path``: level > 0 for relative imports."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module is None:
                out += [(alias.name, node.level) for alias in node.names]
            else:
                out.append((node.module or "", node.level))
    return out


def test_api_modules() -> None:
    """Every module of the package is placed in a layer."""
    assert {top(p) for p in modules()} <= set(LAYERS)


def test_imports_run_downwards_only() -> None:
    for path in modules():
        me = top(path)
        depth = len(path.relative_to(PACKAGE).parts) - 1
        for module, level in imports_of(path):
            if level == 0 and module.split(".")[0] == "agentauth":
                target = module.split(".")[1] if "." in module else "__init__"
            elif level > depth:
                target = module.split(".")[0]
            else:
                continue  # within the same subpackage
            assert target in LAYERS, f"{path.name} imports unknown module {target}"
            assert LAYERS[target] <= LAYERS[me], f"{path.name} ({me}) imports upwards: {target}"


def test_only_the_owner_imports_a_dependency() -> None:
    for path in modules():
        me = top(path)
        for module, level in imports_of(path):
            if level:
                continue
            owner = OWNERS.get(module.split(".")[0])
            assert owner is None or owner == me, f"{path.name} imports {module}"


def test_spec_error_registry_matches_the_code() -> None:
    # spec/protocol.md section 7 lists every code with its class, in the registry's order.
    spec = (PACKAGE.parent / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = spec.split("## 7. Error registry", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert [(code, cls) for cls, code, _ in rows] == [
        (code, cls.__name__) for code, (cls, _) in agentauth.ERROR_CODES.items()]
    assert f"the {len(agentauth.ERROR_CODES)} stable codes" in " ".join(section.split())
    for _, code, meaning in rows:
        assert meaning.strip().replace("`", "'") == agentauth.ERROR_CODES[code][1], code


def test_error_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        agentauth.ERROR_CODES["new"] = (agentauth.InvalidState, "x")  # type: ignore[index]
