"""The public surface and the layering rules of the package."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
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
    "CapabilityDenied", "Refusal", "REFUSAL_KINDS",
    "KeyFileError", "TrustStoreError", "AuditLogError", "TrustStore", "FileError",
    "Agent", "RequestError", "PeerRefused",
}

# Layer of each module: a module may import only from its own layer or lower ones.
LAYERS = {
    # foundations
    "errors": 0, "_version": 0, "crypto": 1, "wire": 1, "verdict": 1, "files": 1, "keyfile": 1,
    # the protocol core
    "identity": 2, "noise": 2, "replay": 2, "audit": 2,
    "envelope": 3, "session": 3, "capability": 3, "alert": 3,
    "handshake": 4, "stores": 4, "keys": 4,
    # the layers over it
    "aio": 5, "http": 5,
    "agent": 6,
    # the kit that tests all of the above, the agent's request layer included
    "conformance": 7,
    "cli": 8,
    "__main__": 9, "__init__": 9,
}
# Third-party imports that only one module may make.
OWNERS = {"nacl": "crypto", "cryptography": "crypto", "msgpack": "wire",
          "anyio": ("aio", "agent", "cli"),  # the async layers, and the demo's event loop
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


# Each subpackage's public names: its __all__ is exactly this set (the package root's is
# EXPECTED_EXPORTS above), each name is there and documented.
SUBPACKAGE_EXPORTS = {
    "agent": {"Agent", "Incoming", "Peer", "Server"},
    "stores": {"MemoryReplayStore", "MemoryRevocationStore", "RedisReplayStore",
               "RedisRevocationStore", "RedisTable", "SQLiteReplayStore",
               "SQLiteRevocationStore", "open_sqlite", "sqlite_failure"},
    "keys": {"AuditFileHandler", "AuditSummary", "LiveTrust", "Rotation", "TrustEntry",
             "TrustStore", "next_key_commitment", "parse_rotation", "rotate",
             "verify_audit_log"},
    "cli": {"main"},
    "capability": {"ANY_ACTION", "CREDENTIAL_EXTENSION", "DetachedInvocations", "Eq", "Grant",
                   "AnyOf", "AnyValue", "Cidr", "Constraint", "Contains", "Length",
                   "NotOneOf", "Pattern", "Subpath", "Subset", "Url",
                   "Link", "Notice", "OneOf", "Prefix", "REFUSAL_KINDS", "Range", "Refusal",
                   "Request", "RevocationStore", "SessionInvocations", "admission",
                   "decode_chain", "delegate", "encode_chain", "invoke", "revoke",
                   "verify_chain", "verify_notice"},
    "http": {"AgentAuth", "AgentAuthInfo", "AgentAuthMiddleware", "AgentUser",
             "CAPABILITY_HEADER", "DIRECTORY_MEDIA_TYPE", "DIRECTORY_PATH", "HTTPMessage",
             "PROTOCOL_HEADERS", "REFUSAL_RPC_CODE", "ResponseContent", "SignedHeaders",
             "Signer",
             "VerifiedRequest", "Verifier", "accept_signature", "check_capability",
             "check_content_digest", "check_response", "check_response_head",
             "content_digest", "default_resource", "directory_document",
             "invocation_binding", "invocation_for", "is_stream", "read_directory",
             "request_message", "sign_directory", "signature_base", "status_of"},
    "aio": {"AgentAuthAttribute", "AgentAuthListener", "AgentAuthMessageStream",
            "AgentAuthStream", "AsyncReplayStore", "async_replay_store", "connect",
            "create_listener", "exchange_revocations", "open_envelope", "serve"},
}


@pytest.mark.parametrize("name", sorted(SUBPACKAGE_EXPORTS))
def test_subpackage_exports_are_exactly_the_documented_set(name: str) -> None:
    module = importlib.import_module(f"agentauth.{name}")
    assert module.__doc__
    assert set(module.__all__) == SUBPACKAGE_EXPORTS[name]
    for export in module.__all__:
        obj = getattr(module, export)
        assert not callable(obj) or obj.__doc__, f"agentauth.{name}.{export} has no docstring"


def test_every_module_declares_its_public_names() -> None:
    """Every module has a docstring and an ``__all__`` naming only what it defines or
    re-exports (private modules, named with a leading underscore, included)."""
    for path in modules():
        if path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = importlib.import_module(name.removesuffix(".__init__"))
        assert module.__doc__, f"{name} has no docstring"
        for export in getattr(module, "__all__", ()):
            assert not export.startswith("_") or export == "__version__", (name, export)
            assert hasattr(module, export), (name, export)


def test_the_sans_io_core_does_not_import_the_async_layer() -> None:
    """``import agentauth`` and the core modules leave anyio unloaded (the async names are
    loaded on first use, PEP 562), and the lazy names are the async layer's own."""
    code = ("import sys, agentauth, agentauth.wire, agentauth.handshake, agentauth.session, "
            "agentauth.envelope, agentauth.capability, agentauth.stores, agentauth.keys\n"
            "assert 'anyio' not in sys.modules, 'anyio loaded'\n"
            "import agentauth.aio\n"
            "assert agentauth.connect is agentauth.aio.connect\n"
            "assert 'serve' in dir(agentauth)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError):
        agentauth.no_such_name  # noqa: B018


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
            assert owner is None or me in (owner if isinstance(owner, tuple) else (owner,)), (
                f"{path.name} imports {module}")


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


def test_spec_error_registry_introduces_every_class() -> None:
    # Section 7's opening paragraph says what each class of error means: every class that
    # carries a code is named there, each local or remote one in its own list.
    spec = (PACKAGE.parent / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = spec.split("## 7. Error registry", 1)[1].split("\n## ", 1)[0]
    intro = " ".join(section.split("| class |", 1)[0].split())
    local = intro.split("Local errors (`LocalError`: classes ", 1)[1].split(")", 1)[0]
    remote = intro.split("remote errors (`RemoteError`: ", 1)[1].split(")", 1)[0]
    for cls in {cls for cls, _ in agentauth.ERROR_CODES.values()}:
        if issubclass(cls, agentauth.LocalError):
            assert cls.__name__ in local.split(", "), cls
        elif issubclass(cls, agentauth.RemoteError):
            assert cls.__name__ in remote.split(", "), cls
        else:
            assert f"`{cls.__name__}`" in intro, cls


def test_spec_vector_layout_lists_every_vector_file() -> None:
    # spec/protocol.md section 6.1 gives one list item to each file of spec/vectors/.
    spec = (PACKAGE.parent / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = spec.split("### 6.1 Layout", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^- `([\w-]+\.json)`", section, flags=re.MULTILINE)
    files = sorted(path.name for path in (PACKAGE.parent / "spec" / "vectors").iterdir())
    assert sorted(listed) == files
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    assert f"holds {words[len(files) - 1]} JSON files" in " ".join(section.split())


def test_spec_refusal_kinds_match_the_code() -> None:
    # spec/protocol.md section 10.6 lists every refusal kind, in the registry's order, with
    # the codes that carry it: each a code of CapabilityDenied.
    spec = (PACKAGE.parent / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = spec.split("**Refusals.**", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", section, flags=re.MULTILINE)
    assert [kind for kind, _ in rows] == list(agentauth.REFUSAL_KINDS)
    for kind, codes in rows:
        named = set(re.findall(r"`(\w+)`", codes))
        assert named and named <= agentauth.CapabilityDenied.codes, kind


def test_error_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        agentauth.ERROR_CODES["new"] = (agentauth.InvalidState, "x")  # type: ignore[index]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_privates(tree: ast.Module) -> set[str]:
    """The private names a module defines: functions, classes, class attributes, slots and
    attributes it assigns on ``self`` or ``cls``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, object.__setattr__(self, "_x", ...)
    return {n for n in names if _private(n)}


def test_private_names_stay_in_the_module_that_defines_them() -> None:
    """A private name is reached only from its own module: no ``from m import _x`` across
    modules (a private submodule of the same package is that package's own) and no
    ``obj._x`` unless this module defines ``_x`` (its own classes' attributes). A module that
    needs another's internals (the vector generator does) asks for a named, documented hook,
    so the boundary stays visible."""
    found = []
    for path in modules():
        tree = ast.parse(path.read_text())
        mine = _defined_privates(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    own_module = (node.level == 1 and node.module is None
                                  and (path.parent / f"{alias.name}.py").exists())
                    if _private(alias.name) and not own_module:
                        found.append(f"{where}: imports {alias.name}")
            elif (isinstance(node, ast.Attribute) and _private(node.attr)
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                  and node.attr not in mine):
                found.append(f"{where}: {ast.unparse(node)}")
    assert found == []
