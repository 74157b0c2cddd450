"""Redis stores: replay keys (spec 11) and revocation notices (spec 10.8) in a Redis server
shared by every replica of an agent, on any number of machines (one Lua script per call
or batch; bounded waits; exactly once under lost replies; refuses what a restarted or
flushed server may have forgotten).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ..capability.chain import MAX_SKEW, trust_roots
from ..capability.revocation import (
    PER_REVOKER,
    admit_notice,
    announce_stored,
    check_per_revoker,
    over_quota,
    read_notice,
)
from ..errors import InvalidArgument, InvalidState, StoreError
from ..replay import check_key, milliseconds

if TYPE_CHECKING:
    import redis

__all__ = ["DEFAULT_HORIZON", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "RedisReplayStore",
           "RedisRevocationStore", "RedisTable"]


DEFAULT_TIMEOUT: Final = 1.0  # seconds: connecting, and waiting for each reply
DEFAULT_RETRIES: Final = 2  # attempts after the first, each with the call's own token
# The longest an entry may be asked to live: the default envelope and HTTP window (300 s)
# plus twice the default skew (60 s), the furthest ahead a caller's expiry can then be.
DEFAULT_HORIZON: Final = 420.0
_ORPHANS = 10_000  # claims of calls that gave up, kept to be released
_RELEASE_STEP = 64  # released per call

# One round trip for any number of keys, atomically. KEYS[1] is the namespace's epoch key
# (the prefix itself: no caller's key is empty); ARGV[1] the epoch this client knows (it
# begins with the server's run_id, checked too: a restarted server may keep the epoch key
# and have the script loaded by another store before that store rewrites it), ARGV[2]
# the call's token, ARGV[3] the number n of keys to claim. KEYS[2..n+1] are claimed with
# ARGV[3+i] milliseconds to live; the rest are released, each with its token and ttl.
# A value is a claimant's token; "~" + token marks a claim released by a call that gave up,
# which a late copy of that call must not take again but anyone else may.
_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not run or run ~= string.match(ARGV[1], '^(%x+) ') then return {-1} end
local token, n = ARGV[2], tonumber(ARGV[3])
local tomb = '~' .. token
for j = n + 2, #KEYS do
  local dead = ARGV[3 + n + 2 * (j - n - 1) - 1]
  local held = redis.call('GET', KEYS[j])
  if held == dead then redis.call('SET', KEYS[j], '~' .. dead, 'KEEPTTL')
  elseif not held then
    redis.call('SET', KEYS[j], '~' .. dead, 'PX', ARGV[3 + n + 2 * (j - n - 1)])
  end
end
local out, mine = {}, {}
for i = 2, n + 1 do
  local key = KEYS[i]
  local held = redis.call('GET', key)
  local free = (not held) or (string.sub(held, 1, 1) == '~' and held ~= tomb)
  if free then redis.call('SET', key, token, 'PX', ARGV[2 + i]) end
  if (free or held == token) and not mine[key] then
    mine[key] = true
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
end
return out
"""

# The epoch key, replaced only if it still holds what was read ("" if it was missing).
_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def _no_client() -> InvalidState:
    # The client library is the redis extra's; without it, a Redis store is a set-up
    # error that says what to install, not a ModuleNotFoundError.
    return InvalidState("a Redis store needs the redis extra: install agentauth[redis]")


def _connect(client: redis.Redis | str, timeout: float) -> redis.Redis:
    """``client``, or a client for a URL with our timeouts and no retries of its own; either
    way one whose every wait is bounded."""
    try:
        import redis as redis_module  # noqa: PLC0415 (optional: agentauth[redis])
    except ImportError as exc:
        raise _no_client() from exc
    if type(timeout) not in (int, float) or not 0 < timeout <= 600:  # NaN too
        raise InvalidArgument("timeout is a positive number of seconds, at most 600")
    if not isinstance(client, redis_module.Redis | str):
        raise InvalidArgument("client is a redis.Redis or a Redis URL")
    if isinstance(client, str):
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        try:
            parts = urllib.parse.urlsplit(client)
            if parts.scheme in ("redis", "rediss") and parts.path not in ("", "/") and not (
                    parts.path[1:].isdigit() and parts.path[1:].isascii()):
                raise ValueError("the database is a number")  # redis-py would take 0
            client = redis_module.Redis.from_url(
                client, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0))
        except (ValueError, TypeError, redis_module.RedisError):
            # The URL is not echoed: it may hold a password.
            raise InvalidArgument("the Redis URL is malformed (redis://[user:password@]host"
                                  "[:port][/db], rediss://... or unix://path)") from None
    # The waits a connection will use, read from one made (not connected) as the client
    # would make it: a URL's query or the client's own settings can override ours, and an
    # option the connection does not take would otherwise fail at the first call.
    pool = client.connection_pool
    try:
        probe = pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, redis_module.RedisError):
        raise InvalidArgument("the Redis client or URL has an option its connection does "
                              "not take") from None
    for name in ("socket_timeout", "socket_connect_timeout"):
        wait: Any = getattr(probe, name, None)
        if type(wait) not in (int, float) or not 0 < wait <= 600:  # None, inf, NaN, 0
            raise InvalidArgument(
                f"the Redis connection's {name} is {wait!r}: a stalled server would block "
                "every check; it must be a positive number of seconds, at most 600")
    return client


class _Redis:
    """A Redis client, its key prefix, and how its failures map to StoreError."""

    def __init__(self, client: redis.Redis | str, prefix: bytes, check_policy: bool,
                 clock: Callable[[], float], margin: float = 0.0, *,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 allow_volatile: bool = False) -> None:
        try:
            import redis as redis_module  # noqa: PLC0415 (optional: agentauth[redis])
        except ImportError as exc:
            raise _no_client() from exc
        if type(prefix) is not bytes or not 0 < len(prefix) <= 64 or any(
                c in prefix for c in b"*?[]\\"):
            raise InvalidArgument("prefix is 1 to 64 bytes, with no glob characters")
        if type(margin) not in (int, float) or not 0 <= margin <= 3600:
            raise InvalidArgument("margin is 0 to 3600 seconds")
        if type(retries) is not int or not 0 <= retries <= 10:
            raise InvalidArgument("retries is an integer from 0 to 10")
        if type(allow_volatile) is not bool or type(check_policy) is not bool:
            raise InvalidArgument("allow_volatile and check_policy are booleans")
        self._errors = redis_module.exceptions
        self._retries = retries
        self._client = _connect(client, timeout)
        self._prefix = prefix
        self._clock = clock
        self._margin = margin
        self._volatile = False  # the server keeps nothing on disk (known when checked)
        if check_policy:
            self._check_server(allow_volatile)

    def _config(self, name: str) -> str:
        try:
            found = self._call(lambda: self._client.config_get(name))
        except InvalidState:
            raise InvalidState(
                "the Redis server refuses CONFIG GET (renamed or disabled?), so its eviction "
                "policy and persistence cannot be checked; check them yourself (noeviction, "
                "appendonly or save) and pass check_policy=False") from None
        value = found.get(name, found.get(name.encode())) if isinstance(found, dict) else None
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if not isinstance(value, str):  # not there (a proxy, a look-alike server), or odd
            raise InvalidState(
                f"the Redis server's CONFIG GET gives no {name}, so its eviction policy "
                "and persistence cannot be checked; check them yourself (noeviction, "
                "appendonly or save) and pass check_policy=False")
        return value

    def _check_server(self, allow_volatile: bool) -> None:
        policy = self._config("maxmemory-policy")
        if policy != "noeviction":
            raise InvalidState(f"the Redis server evicts keys (maxmemory-policy {policy!r}); "
                               "a store that must not forget needs noeviction")
        self._volatile = self._config("appendonly") != "yes" and not self._config("save")
        if self._volatile and not allow_volatile:
            raise InvalidState(
                "the Redis server keeps nothing on disk (appendonly no, save ''): a "
                "restart would forget every entry; turn on persistence, or pass "
                "allow_volatile=True to accept that (the replay store then refuses what "
                "it may have forgotten after a restart)")

    def _call(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` (idempotent: a write carries its caller's token), again after a
        lost reply up to ``retries`` times; map failures to typed errors."""
        errors = self._errors
        lost = 0
        while True:
            try:
                return work()
            except (errors.TimeoutError, errors.ConnectionError) as exc:
                lost += 1
                if lost <= self._retries:
                    continue
                raise StoreError(f"the Redis server did not answer in time or could not "
                                 f"be reached ({type(exc).__name__}, {lost} attempts)",
                                 code="store_unavailable") from None
            except errors.OutOfMemoryError:
                raise StoreError("the Redis server is out of memory", code="store_full"
                                 ) from None
            except errors.NoScriptError:
                raise
            except errors.ResponseError as exc:
                if "unknown command" in str(exc).lower():
                    raise InvalidState("the Redis server refuses a command it needs"
                                       ) from None
                raise StoreError(f"the Redis server failed ({type(exc).__name__})",
                                 code="store_unavailable") from None
            except errors.RedisError as exc:
                raise StoreError(f"the Redis server failed ({type(exc).__name__})",
                                 code="store_unavailable") from None

    def _ttl(self, expires: float) -> int:
        """Milliseconds from now until ``expires`` plus the margin; 0 if already past."""
        left = expires - self._clock()
        return 0 if left < 0 else math.ceil((left + self._margin) * 1000) or 1

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


class RedisTable(_Redis):
    """Byte values under byte keys with expiries, in one Redis namespace (``prefix``): what
    the Redis revocation store keeps its notices in. The server is checked as for
    :class:`RedisReplayStore` (no eviction; persistence unless ``allow_volatile``)."""

    def __init__(self, client: redis.Redis | str, *, prefix: bytes,
                 check_policy: bool = True, clock: Callable[[], float] = time.time,
                 timeout: float = DEFAULT_TIMEOUT, allow_volatile: bool = False) -> None:
        super().__init__(client, prefix, check_policy, clock, timeout=timeout,
                         allow_volatile=allow_volatile)

    def put(self, key: bytes, value: bytes, expires: float) -> bool:
        """Keep ``value`` under ``key`` until ``expires``; False if the key was there (or
        ``expires`` has passed)."""
        ttl = self._ttl(expires)
        if not ttl:
            return False
        return bool(self._call(lambda: self._client.set(self._prefix + key, value, nx=True,
                                                        px=ttl)))

    def get(self, key: bytes) -> bytes | None:
        """The value under ``key``, if it is there."""
        value = self._call(lambda: self._client.get(self._prefix + key))
        return None if value is None else bytes(value)

    def exists(self, key: bytes) -> bool:
        """Whether ``key`` is there."""
        return bool(self._call(lambda: self._client.exists(self._prefix + key)))

    def keys(self) -> list[bytes]:
        """Every key of the namespace (a SCAN: not atomic with concurrent writes), the
        groups' counts of :meth:`put_counted` excepted."""
        size = len(self._prefix)
        found = self._call(lambda: list(self._client.scan_iter(match=self._prefix + b"*",
                                                               count=1000)))
        return sorted(key for key in (bytes(k)[size:] for k in found)
                      if not key.startswith(_GROUPS))

    def put_counted(self, key: bytes, value: bytes, expires: float, group: bytes,
                    limit: int) -> bool | None:
        """:meth:`put`, counting the key in ``group`` until it expires, in one atomic step
        (a script): None, and nothing written, if ``group`` already counts ``limit`` live
        keys."""
        ttl = self._ttl(expires)
        if not ttl:
            return False
        now = milliseconds(self._clock())
        result = self._call(lambda: self._client.eval(
            _PUT_COUNTED, 2, self._prefix + key, self._prefix + _GROUPS + group, value, ttl,
            now, now + ttl, limit))
        return None if result == -1 else bool(result)

    def count(self, group: bytes) -> int:
        """How many live keys ``group`` counts (see :meth:`put_counted`)."""
        now = milliseconds(self._clock())
        return int(self._call(lambda: self._client.zcount(self._prefix + _GROUPS + group,
                                                          now, "+inf")))


_GROUPS: Final = b"\x00agentauth groups\x00"  # where RedisTable keeps its groups' counts
# KEYS: the key, its group's sorted set (members scored by their expiry, in ms); ARGV: the
# value, its ttl, now and the expiry in ms, the group's limit.
_PUT_COUNTED: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""


def _token() -> bytes:
    """A claimant's token: 8 random bytes, never starting with the released mark."""
    while True:
        token = os.urandom(8)
        if token[0] != 0x7E:  # "~"
            return token


class RedisReplayStore(_Redis):
    """Keys in a Redis server, shared by every process and machine that uses it.

    Each call is one round trip, a Lua script run atomically by the server for one key or
    a batch (all or nothing). ``client`` is a ``redis.Redis`` (its own timeouts and retries
    then apply) or a URL, for which the store makes a client that waits at most ``timeout``
    seconds to connect and for each reply.

    **Exactly once under timeouts.** Each call draws a random token and stores it as the
    key's value. A call whose reply is lost (timeout, dropped connection) is retried up to
    ``retries`` times with the same token: a retry that finds its own token knows its
    earlier attempt claimed the key and answers *new*; any other token is another
    delivery, answered *seen*. A call that gives up raises ``store_unavailable`` (the
    message is refused, not processed) and its possible claim is released on the store's
    next round trip, so the sender's redelivery is accepted once instead of being refused
    as a replay.

    **The server.** It must never evict keys (``maxmemory-policy noeviction``) and, unless
    ``allow_volatile``, must keep its data on disk (``appendonly yes`` or a ``save``
    schedule): both are read with CONFIG GET unless ``check_policy=False``. Every restart,
    failover and flush of the namespace is detected (the server's ``run_id``, and an
    epoch key the stores keep); after one at time R (a restart: the server's start; a
    failover to a server already running, or a flush: when it is noticed), keys expiring
    up to R + ``horizon`` + ``margin`` are refused (``store_unavailable``): they may belong
    to messages accepted before it, which the server may lack. A namespace seen for the
    first time is trusted on a server that keeps its data; on one that does not, R is its
    start. A store that used the namespace before a flush or a restart keeps its own
    finding over what a store that started after it noted (which cannot tell the
    namespace from a new one), and stores that learn the epoch from it refuse the same.
    So that this rule holds, an expiry more than ``horizon`` seconds ahead is refused
    (``invalid_argument``): set ``horizon`` to at least the furthest ahead a caller's
    expiry can be (default 420 s: an envelope's or an HTTP request's 300 s window plus
    twice the 60 s skew; a detached invocation's is twice its window plus twice its skew
    plus 1 s).

    ``margin`` (seconds) lengthens every entry: set it to at least the largest clock
    difference between the machines that share the store. A full server (``OOM``) gives
    ``store_full``; an unreachable or stalled one ``store_unavailable``.
    """

    def __init__(self, client: redis.Redis | str, *, prefix: bytes = b"agentauth:replay:",
                 margin: float = 1.0, check_policy: bool = True,
                 clock: Callable[[], float] = time.time, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, horizon: float = DEFAULT_HORIZON,
                 allow_volatile: bool = False) -> None:
        if type(horizon) not in (int, float) or not 1 <= horizon <= 30 * 86400:
            raise InvalidArgument("horizon is 1 s to 30 days")
        super().__init__(client, prefix, check_policy, clock, margin, timeout=timeout,
                         retries=retries, allow_volatile=allow_volatile)
        self._horizon = float(horizon)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._orphans: dict[tuple[bytes, bytes], float] = {}  # (key, token): expires
        self._sha = ""
        self._sync_failed = 0  # how many times learning the epoch has failed
        self._epoch: bytes | None = None  # the epoch key's value this store knows
        self._run_id = ""
        self._restarted = 0.0  # the last restart, failover or flush noted (our clock)
        self._confirmed = 0.0  # the last time our epoch was known to hold (our clock)

    # -- the server's epoch

    def _server(self) -> tuple[str, float]:
        """The server's run_id and its start time by our clock (the latest it can have
        been: uptime is counted in whole seconds)."""
        info = self._call(lambda: self._client.info("server"))
        run_id, uptime = info.get("run_id"), info.get("uptime_in_seconds")
        if not isinstance(run_id, str) or type(uptime) is not int:
            raise InvalidState("the Redis server's INFO has no run_id or uptime")
        return run_id, self._clock() - uptime

    def _sync(self) -> None:
        """Learn the server's epoch, noting a restart or a flush since we last knew it
        (one thread at a time; a thread that finds it done by another returns)."""
        failed = self._sync_failed
        with self._sync_lock:
            if self._sha:
                return
            if self._sync_failed != failed:
                # It failed while we waited: so do we, at once, rather than each waiter
                # trying again in turn (the last of n would wait n times the timeout).
                raise StoreError(
                    "the Redis server did not answer in time or could not be reached "
                    "(another call learning its epoch just failed)", code="store_unavailable")
            try:
                # The script first: a restart after it empties the cache again, and one
                # before the epoch is read is seen by the read. Loaded after the read, it
                # could land on a server restarted in between, whose kept epoch key would
                # then pass the script's check with the old server's epoch.
                sha = str(self._call(lambda: self._client.script_load(_SCRIPT)))
                for _ in range(5):
                    if self._learn():
                        self._sha = sha
                        return
                raise StoreError("the Redis store's epoch keeps changing (restarts or "
                                 "flushes)", code="store_unavailable")
            except BaseException:
                self._sync_failed += 1
                raise

    def _learn(self) -> bool:
        """Read the epoch key; adopt it, or write our finding over what we read (False if
        someone changed it meanwhile: read again).

        What another store noted is adopted only if it is at least as late as what this
        store can tell for itself: a store that starts after a flush or a loss cannot tell
        an empty namespace from a new one and notes no restart, and a store that was
        running across it must not take that for the truth."""
        client, key = self._client, self._prefix
        run_id, started = self._server()
        read = self._clock()
        held = self._call(lambda: client.get(key))
        if isinstance(held, str):  # a client made with decode_responses=True
            held = held.encode()
        theirs = bytes(held).split(b" ") if held is not None else []
        noted = (int(theirs[1]) / 1000 if len(theirs) == 3 and theirs[0] == run_id.encode()
                 and theirs[1].isdigit() else None)
        if noted is not None and noted > read + self._horizon:
            noted = None  # no store noticed anything then: a wrong clock, or a stranger
        floor: float | None = self._confirmed - self._margin
        if self._epoch is None:  # our first look: trust what another store noted
            floor = None
            finding = (0.0 if held is None and not self._volatile
                       else started if held is None
                       else read)  # another server's entry (or a stranger's): now
        elif held == self._epoch and noted is not None:
            floor = None  # nothing changed (the script cache alone was emptied)
            finding = self._restarted
        elif run_id != self._run_id:
            # Restarted (it lost what it had not saved), or, if it was already running
            # when we last had an answer, another server (a replica promoted, which may
            # lack the last writes): its data is then known good only up to now.
            finding = started if started > self._confirmed else read
        else:  # the same server, and the key was removed or rewritten since we read it
            finding = read  # flushed (a store that starts after a flush notes nothing)
        if noted is not None and (floor is None or noted >= floor):
            restarted = noted  # another store already noted this one
        else:
            # A mark of its own, so that a namespace set up again after a flush never
            # holds the value a running store knows.
            value = b"%s %d %s" % (run_id.encode(), math.ceil(finding * 1000),
                                   os.urandom(8).hex().encode())
            if not self._call(lambda: client.eval(_SWAP, 1, key, held or b"", value)):
                return False
            held, restarted = value, finding
        self._restarted = max(self._restarted, restarted)
        self._confirmed = max(self._confirmed, read)
        self._run_id = run_id
        self._epoch = bytes(held)
        return True

    # -- claims

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        return self._claim([(key, expires)])[0]

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: one round trip for the batch, all or nothing."""
        return self._claim(items)

    def _claim(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        for key, expires in items:
            check_key(key, expires)
        now = self._clock()
        if any(expires > now + self._horizon for _, expires in items):
            raise InvalidArgument(f"an expiry is more than the store's horizon "
                                  f"({self._horizon:g} s) ahead; give the store a horizon "
                                  "of at least the furthest ahead its callers' expiries can be")
        ttls = [self._ttl(expires) for _, expires in items]
        live = [(key, ttl, expires)
                for (key, expires), ttl in zip(items, ttls, strict=True) if ttl]
        if not live:
            return [False] * len(items)
        token = _token()
        answers = iter(self._run(live, token))
        return [bool(next(answers)) if ttl else False for ttl in ttls]

    def _run(self, live: list[tuple[bytes, int, float]], token: bytes) -> list[int]:
        """Claim ``live`` with ``token`` (a lost reply is retried with it), learning the
        server's epoch first if it changed; a call that ends without an answer leaves its
        claims to be released."""
        released = self._orphans_for(live)
        sent = False
        try:
            for _ in range(3):
                if not self._sha:  # first use, or a restart noticed by an earlier call
                    self._sync()
                self._refuse_forgotten(live)
                sent, sending = True, self._clock()
                answer = self._send(live, token, released)
                if answer[0] != -1:
                    self._confirmed = max(self._confirmed, sending)
                    self._released(released)
                    return answer
                self._sha = ""  # our epoch is stale: learn the new one
            raise StoreError("the Redis store's epoch keeps changing (restarts or flushes)",
                             code="store_unavailable")
        except BaseException:
            if sent:
                self._keep_orphans([((key, token), expires) for key, _, expires in live])
            raise

    def _send(self, live: list[tuple[bytes, int, float]], token: bytes,
              released: list[tuple[tuple[bytes, bytes], float]]) -> list[int]:
        prefix = self._prefix
        keys = [prefix] + [prefix + key for key, _, _ in live]
        args: list[bytes | int] = [self._epoch or b"", token, len(live)]
        args += [ttl for _, ttl, _ in live]
        for (key, dead), expires in released:
            keys.append(prefix + key)
            args += [dead, self._ttl(expires) or 1]
        try:
            answer = self._call(lambda: self._client.evalsha(self._sha, len(keys), *keys,
                                                             *args))
        except self._errors.NoScriptError:
            return [-1]  # the script cache is empty: restarted, or flushed
        return [int(a) for a in answer]

    def _refuse_forgotten(self, live: list[tuple[bytes, int, float]]) -> None:
        if self._restarted and any(expires <= self._restarted + self._horizon + self._margin
                                   for _, _, expires in live):
            raise StoreError(
                "the Redis server restarted or was flushed, and may have forgotten keys of "
                "messages stamped before then; such messages are refused until they expire",
                code="store_unavailable")

    def _orphans_for(self, live: list[tuple[bytes, int, float]]
                     ) -> list[tuple[tuple[bytes, bytes], float]]:
        """Claims of calls that gave up, to release: those on this call's keys first (a
        redelivery), then the oldest. They are forgotten only once a release has run."""
        with self._lock:
            if not self._orphans:
                return []
            for claim, expires in list(self._orphans.items()):
                if not self._ttl(expires):
                    del self._orphans[claim]  # expired: nothing to release
            keys = {key for key, _, _ in live}
            ours = [item for item in self._orphans.items() if item[0][0] in keys]
            rest = [item for item in self._orphans.items() if item[0][0] not in keys]
            return (ours + rest)[:max(_RELEASE_STEP, len(ours))]

    def _released(self, claims: list[tuple[tuple[bytes, bytes], float]]) -> None:
        with self._lock:
            for claim, _ in claims:
                self._orphans.pop(claim, None)

    def close(self) -> None:
        """Release the claims of calls that gave up (one round trip, if there are any and
        the server answers: a redelivery through another store sharing the server is then
        accepted), then close the client's connections."""
        with contextlib.suppress(StoreError, InvalidState):
            released = self._orphans_for([])
            if released and self._sha and self._send([], _token(), released) != [-1]:
                self._released(released)
        super().close()

    def _keep_orphans(self, claims: Iterable[tuple[tuple[bytes, bytes], float]]) -> None:
        with self._lock:
            for claim, expires in claims:
                self._orphans[claim] = expires
            while len(self._orphans) > _ORPHANS:  # the oldest: its sender may retry late
                del self._orphans[next(iter(self._orphans))]


class RedisRevocationStore:
    """Notices in a Redis server, shared by every replica of an agent. Each notice is kept
    under its target's id until the target could no longer verify (Redis expires it then,
    so :meth:`prune` has nothing to do), at most ``per_revoker`` live ones about the links
    of each issuer key, counted and stored in one atomic step (spec 10.8). ``client`` is a
    ``redis.Redis`` or a URL (a client that waits at most ``timeout`` seconds for each
    reply). The server must not evict keys and, unless ``allow_volatile``, must keep its
    data on disk: a restart that forgot a notice would let its revoked link through (both
    checked, as for :class:`agentauth.RedisReplayStore`). ``margin`` (seconds) lengthens
    every notice's life: set it to at least the largest clock difference between the
    replicas, since each computes a notice's life from its own clock (a replica ahead would
    otherwise let Redis forget a notice while a verifier behind it still accepts the link)."""

    def __init__(self, client: Any, anchors: Mapping[Any, str], *,
                 prefix: bytes = b"agentauth:revoked:", check_policy: bool = True,
                 clock: Callable[[], float] = time.time,
                 per_revoker: int = PER_REVOKER, timeout: float = DEFAULT_TIMEOUT,
                 allow_volatile: bool = False, margin: float = 1.0) -> None:
        self._roots = trust_roots(anchors)
        self._limit = check_per_revoker(per_revoker)
        if type(margin) not in (int, float) or not 0 <= margin <= 3600:
            raise InvalidArgument("margin is 0 to 3600 seconds")
        self._margin = margin
        self._clock = clock
        self._table = RedisTable(client, prefix=prefix, check_policy=check_policy,
                                 clock=clock, timeout=timeout, allow_volatile=allow_volatile)

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new (False too for a notice whose
        target can no longer verify: there is nothing left to refuse)."""
        read = read_notice(notice)
        checked = admit_notice(read, self.is_revoked(read.target),
                         lambda: self._table.count(read.charged), self._limit, self._roots)
        if checked is None:
            return False
        until = checked.expires + MAX_SKEW
        if until <= self._clock():
            return False
        # Counted again in the same step as the write: replicas share the quota.
        added = self._table.put_counted(checked.target, checked.data, until + self._margin,
                                        read.charged, self._limit)
        if added is None:
            raise over_quota(read.charged, self._limit)
        if added:
            announce_stored(checked, "redis")
        return added

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return self._table.exists(link_id)

    def prune(self, now: int) -> int:
        """Nothing to do: Redis forgets each notice when its target expires."""
        return 0

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return self._table.keys()

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        return self._table.get(link_id)

    def __len__(self) -> int:
        return len(self._table.keys())

    def close(self) -> None:
        """Close the client's connections."""
        self._table.close()
