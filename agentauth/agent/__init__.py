"""The agent: one object holding an identity, its trust, its stores and its audit, that
serves and makes requests with declared, enforced authorization on channels (spec section
15) and seals and opens envelopes. Most users start here; the layers below stay public
for those who bring their own I/O.

The frames and the serving side's checks, without I/O, are in
:mod:`agentauth.agent.frames`.
"""

from .core import Agent, Incoming, Peer, Server

__all__ = ["Agent", "Incoming", "Peer", "Server"]
