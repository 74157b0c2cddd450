"""What a conformance run found: one outcome per check, and three ways to write it down.

A check's id names the spec section it checks first (``protocol.md §4.5 / handshake-negative
/ hs2-bit-flip``); the summary counts PASS, FAIL and SKIP per section. The JSON report and
the JUnit XML (one test suite per section) carry the same outcomes.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Outcome", "Report", "Status", "printable"]


def printable(text: str) -> str:
    """``text`` as it may reach a terminal: a driver's words are shown, its control
    characters (escape sequences, line breaks) escaped, never obeyed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

#: What became of a check.
Status = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one check."""

    id: str
    section: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    #: For a check about a code, its deciding comparison (for a FAIL, the one that failed;
    #: for a PASS, the last): the code expected (a list: the codes the spec allows; None:
    #: acceptance) and the one the driver gave (None: it accepted). None for other checks.
    compared: tuple[str | list[str] | None, str | None] | None = None


@dataclass(slots=True)
class Report:
    """Every outcome of one run, with what the run was given."""

    driver: str
    seed: int
    mutations: int
    peer_driver: str | None = None
    implementation: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        """Record one outcome."""
        self.outcomes.append(outcome)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{section: {"PASS": n, "FAIL": n, "SKIP": n}}``, sections in the spec's order."""
        out: dict[str, dict[str, int]] = {}
        for o in sorted(self.outcomes, key=lambda o: _section_key(o.section)):
            out.setdefault(o.section, {"PASS": 0, "FAIL": 0, "SKIP": 0})[o.status] += 1
        return out

    def total(self, status: Status) -> int:
        """How many checks ended with ``status``."""
        return sum(1 for o in self.outcomes if o.status == status)

    def exit_code(self, *, allow_skip: bool) -> int:
        """0 if the run passes: no FAIL, and no SKIP unless allowed; else 1."""
        if self.total("FAIL") or (self.total("SKIP") and not allow_skip):
            return 1
        return 0

    def summary(self) -> str:
        """A readable summary: failures first, then the counts per section."""
        lines = []
        for o in self.outcomes:
            if o.status != "PASS":
                lines.append(f"{o.status} {o.id}: {o.message}")
        if lines:
            lines.append("")
        width = max([len(s) for s in self.counts()] + [7])
        lines.append(f"{'section':<{width}}  {'PASS':>5} {'FAIL':>5} {'SKIP':>5}")
        for section, c in self.counts().items():
            lines.append(f"{section:<{width}}  {c['PASS']:>5} {c['FAIL']:>5} {c['SKIP']:>5}")
        lines.append(f"{'total':<{width}}  {self.total('PASS'):>5} {self.total('FAIL'):>5} "
                     f"{self.total('SKIP'):>5}")
        lines.append(f"{len(self.outcomes)} checks in {self.seconds:.1f} s against "
                     f"{self.implementation or 'the driver'}; mutation seed {self.seed} "
                     f"({self.mutations} rounds; rerun with --seed {self.seed})")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The report as JSON: the run's inputs, the counts per section, every outcome."""
        content: dict[str, Any] = {
            "driver": self.driver, "peer_driver": self.peer_driver,
            "implementation": self.implementation, "seed": self.seed,
            "mutations": self.mutations, "seconds": round(self.seconds, 3),
            "totals": {s: self.total(s) for s in ("PASS", "FAIL", "SKIP")},
            "sections": self.counts(),
            "checks": [_check_json(o) for o in self.outcomes],
        }
        return json.dumps(content, indent=1) + "\n"

    def to_junit(self) -> str:
        """The report as JUnit XML: one ``testsuite`` per section."""
        root = ET.Element("testsuites", name="agentauth conformance",
                          tests=str(len(self.outcomes)), failures=str(self.total("FAIL")),
                          skipped=str(self.total("SKIP")), time=f"{self.seconds:.3f}")
        for section, c in self.counts().items():
            suite = ET.SubElement(root, "testsuite", name=section,
                                  tests=str(sum(c.values())), failures=str(c["FAIL"]),
                                  skipped=str(c["SKIP"]), errors="0")
            for o in self.outcomes:
                if o.section != section:
                    continue
                case = ET.SubElement(suite, "testcase", classname=section, name=_xml_text(o.id),
                                     time=f"{o.seconds:.6f}")
                text = _xml_text(o.message)
                if o.status == "FAIL":
                    ET.SubElement(case, "failure", message=text[:500]).text = text
                elif o.status == "SKIP":
                    ET.SubElement(case, "skipped", message=text[:500])
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _check_json(o: Outcome) -> dict[str, Any]:
    # A check about a code has "code": {"expected", "got"}; any other has "code": null.
    out = asdict(o) | {"seconds": round(o.seconds, 6)}
    del out["compared"]
    out["code"] = None if o.compared is None else dict(zip(("expected", "got"), o.compared,
                                                           strict=True))
    return out


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    # A driver's messages may hold characters XML 1.0 cannot carry: shown as U+FFFD.
    return _NOT_XML.sub("\ufffd", text)


def _section_key(section: str) -> tuple[str, tuple[int, ...]]:
    # "protocol.md §4.10" sorts after "protocol.md §4.9".
    doc, _, number = section.partition(" §")
    parts = tuple(int(p) for p in number.split(".") if p.isdigit())
    return doc, parts
