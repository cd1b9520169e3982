"""The official MCP conformance suite, run against Portico.

Requirement: the suite passes in full against ``/servers/{id}/mcp`` fronting an everything-shaped
upstream, at ``--spec-version 2025-11-25`` and ``2026-07-28``, with the same score the upstream gets
directly. Each era's test runs the pinned harness (``tools/node/bin/conformance``, 0.2.0-alpha.12)
twice in the same test, once at the upstream and once through Portico, and compares every
scenario's ``checks.json``:

* no check may be FAILURE through Portico;
* the (scenario, check id) pairs that are SUCCESS through Portico must be exactly the ones that are
  SUCCESS directly (counted: a scenario may emit the same check id more than once).

The portal (``/mcp``, an aggregate of several upstreams with namespaced names) cannot pass the
everything-shaped scenarios by construction (the suite calls ``test_simple_text``, the portal calls
it ``every__test_simple_text``), so it is held to the scenarios that work on any server.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.upstreams.launch import REPO_ROOT, running_sync, stdio_argv

pytestmark = pytest.mark.node

CONFORMANCE = REPO_ROOT / "tools" / "node" / "bin" / "conformance"
SUITE_TIMEOUT_S = 150  # a whole `--suite all` run; it takes about 5 s on a quiet machine
SCENARIO_TIMEOUT_S = 60  # one `--scenario` run
SCENARIO_TIMEOUT_MS = "20000"  # the harness's own per-scenario limit

# <output dir>/server-<scenario>-<ISO timestamp with ':' and '.' replaced by '-'>/checks.json
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
RUNNING_SCENARIO = re.compile(r"^=== Running scenario: (?P<scenario>\S+) ===$", re.MULTILINE)


@dataclass(frozen=True)
class Check:
    scenario: str
    id: str
    status: str  # SUCCESS | FAILURE | WARNING | INFO
    message: str
    details: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.scenario, self.id)

    def describe(self) -> str:
        return f"{self.scenario} / {self.id}: {self.status}" + (f" ({self.message})" if self.message else "")


@dataclass
class SuiteRun:
    url: str
    argv: list[str]
    returncode: int
    output: str
    scenarios: list[str]
    checks: list[Check]

    def with_status(self, status: str) -> list[Check]:
        return [check for check in self.checks if check.status == status]

    def successes(self) -> Counter[tuple[str, str]]:
        return Counter(check.key for check in self.with_status("SUCCESS"))

    def statuses(self) -> dict[tuple[str, str], list[str]]:
        table: dict[tuple[str, str], list[str]] = {}
        for check in self.checks:
            table.setdefault(check.key, []).append(check.status)
        return table

    def tail(self) -> str:
        return f"$ {' '.join(self.argv)}\n(exit {self.returncode})\n{self.output[-4000:]}"


def run_conformance(url: str, out_dir: Path, *selection: str, timeout_s: float = SUITE_TIMEOUT_S) -> SuiteRun:
    """Run `conformance server` against `url`, bounded by `timeout_s`, and parse every checks.json."""
    argv = [str(CONFORMANCE), "server", "--url", url, *selection, "--timeout", SCENARIO_TIMEOUT_MS, "-o", str(out_dir)]
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout or ""
        pytest.fail(f"conformance did not finish within {timeout_s}s: {' '.join(argv)}\n{partial[-4000:]}")
    output = completed.stdout + completed.stderr
    checks: list[Check] = []
    seen: set[str] = set()
    for result_dir in sorted(out_dir.iterdir()) if out_dir.exists() else []:
        match = RESULT_DIR.match(result_dir.name)
        if match is None:
            continue
        scenario = match["scenario"]
        seen.add(scenario)
        checks_file = result_dir / "checks.json"
        if not checks_file.exists():  # the harness caught an exception in the scenario and wrote nothing
            checks.append(Check(scenario, "<scenario crashed>", "FAILURE", "no checks.json written", {}))
            continue
        for raw in json.loads(checks_file.read_text()):
            checks.append(
                Check(
                    scenario=scenario,
                    id=str(raw["id"]),
                    status=str(raw["status"]),
                    message=str(raw.get("errorMessage") or ""),
                    details=raw.get("details") or {},
                )
            )
    scenarios = RUNNING_SCENARIO.findall(completed.stdout) or sorted(seen)
    for scenario in scenarios:
        if scenario not in seen:
            checks.append(Check(scenario, "<scenario did not run>", "FAILURE", "no result directory", {}))
    return SuiteRun(url, argv, completed.returncode, output, scenarios, checks)


def status_diff(direct: SuiteRun, through: SuiteRun) -> list[str]:
    """One line per (scenario, check id) whose statuses differ, e.g. `SUCCESS direct, INFO through Portico`."""
    ours, theirs = direct.statuses(), through.statuses()
    lines = []
    for key in sorted(ours.keys() | theirs.keys()):
        left, right = sorted(ours.get(key, [])), sorted(theirs.get(key, []))
        if left != right:
            lines.append(
                f"  {key[0]} / {key[1]}: {'+'.join(left) or 'missing'} direct, "
                f"{'+'.join(right) or 'missing'} through Portico"
            )
    return lines


@pytest.fixture(scope="module")
def conformance() -> Path:
    if not CONFORMANCE.exists():
        pytest.fail("Node toolchain missing: run tools/install-node.sh (./dev test does)")
    return CONFORMANCE


@dataclass
class Setup:
    upstream_url: str
    portico: Running


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, conformance: Path) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("conformance-portico")
    with running_sync("everything") as every:
        servers: list[dict[str, Any]] = [
            {"id": "every", "url": every.url},
            {"id": "local", "command": stdio_argv("echo")},
        ]
        with serve_in_thread(make_settings(tmp, servers)) as running:
            yield Setup(every.url, running)


@pytest.mark.parametrize("spec_version", ["2025-11-25", "2026-07-28"])
def test_the_conformance_suite_scores_the_same_through_a_per_server_url_as_against_the_upstream_directly(
    setup: Setup, spec_version: str, tmp_path: Path
) -> None:
    selection = ("--suite", "all", "--spec-version", spec_version)
    direct = run_conformance(setup.upstream_url, tmp_path / "direct", *selection)
    through = run_conformance(setup.portico.server_url("every"), tmp_path / "portico", *selection)

    # Preconditions: the fixture is everything-shaped, so the direct run is clean and non-empty.
    assert direct.checks, f"the direct run produced no checks:\n{direct.tail()}"
    assert not direct.with_status("FAILURE"), "the upstream itself fails:\n" + "\n".join(
        c.describe() for c in direct.with_status("FAILURE")
    )

    diff = status_diff(direct, through)
    direct_ok, through_ok = direct.successes(), through.successes()
    report = [
        f"spec version {spec_version}: SUCCESS {direct_ok.total()} direct, {through_ok.total()} through Portico; "
        f"FAILURE {len(through.with_status('FAILURE'))} through Portico",
        "checks whose status differs:",
        *(diff or ["  (none)"]),
    ]
    print("\n".join(report))

    problems: list[str] = []
    if through.scenarios != direct.scenarios:
        problems.append(f"scenarios differ: direct {direct.scenarios}, through Portico {through.scenarios}")
    failures = through.with_status("FAILURE")
    if failures:
        problems.append("FAILURE through Portico:\n" + "\n".join("  " + c.describe() for c in failures))
    lost = direct_ok - through_ok
    gained = through_ok - direct_ok
    if lost or gained:
        problems.append(
            "SUCCESS sets differ:\n"
            + "".join(f"  SUCCESS direct only: {s} / {c}\n" for s, c in sorted(lost))
            + "".join(f"  SUCCESS through Portico only: {s} / {c}\n" for s, c in sorted(gained))
        )
    if problems:
        non_success = [c.describe() for c in through.checks if c.status != "SUCCESS" and c.key in lost]
        detail = "\n".join(["", *report, "", *problems, "through-Portico detail of lost checks:", *non_success])
        pytest.fail(detail, pytrace=False)


# Era-agnostic scenarios (they need no everything-shaped tool names), each at every spec version
# where the harness considers it applicable; an inapplicable pair is not generated, because the
# harness would only print SKIPPED.
PORTAL_SCENARIOS: list[tuple[str, str]] = [
    ("2025-11-25", "server-initialize"),
    ("2025-11-25", "server-session-lifecycle"),
    ("2025-11-25", "ping"),
    ("2025-11-25", "tools-list"),
    ("2025-11-25", "resources-list"),
    ("2025-11-25", "prompts-list"),
    ("2025-11-25", "dns-rebinding-protection"),
    ("2025-11-25", "server-sse-multiple-streams"),
    ("2026-07-28", "tools-list"),
    ("2026-07-28", "resources-list"),
    ("2026-07-28", "prompts-list"),
    ("2026-07-28", "sep-2164-resource-not-found"),
    ("2026-07-28", "dns-rebinding-protection"),
    ("2026-07-28", "http-header-validation"),
    ("2026-07-28", "caching"),
    ("2026-07-28", "server-stateless"),
    ("2026-07-28", "server-sse-multiple-streams"),
    ("2026-07-28", "input-required-result-unsupported-methods"),
    ("2026-07-28", "input-required-result-missing-input-response"),
    ("2026-07-28", "input-required-result-ignore-extra-params"),
    ("2026-07-28", "input-required-result-validate-input"),
]


@pytest.mark.parametrize(("spec_version", "scenario"), PORTAL_SCENARIOS)
def test_the_portal_passes_every_era_agnostic_conformance_scenario(
    setup: Setup, spec_version: str, scenario: str, tmp_path: Path
) -> None:
    """No FAILURE at `/mcp`.

    `server-stateless` calls a few diagnostic tools by their bare names (`test_missing_capability`,
    `test_streaming_elicitation`, `test_logging_tool`); in the portal they are `every__...`, so the
    harness reports those checks as FAILURE with `details.untestable: true`. Those are shape gaps of
    an aggregating portal, not failures of it; every other check must pass.
    """
    run = run_conformance(
        setup.portico.url,
        tmp_path / "portal",
        "--scenario",
        scenario,
        "--spec-version",
        spec_version,
        timeout_s=SCENARIO_TIMEOUT_S,
    )
    assert run.checks, f"the scenario produced no checks (skipped or crashed):\n{run.tail()}"
    failures = [c for c in run.with_status("FAILURE") if c.details.get("untestable") is not True]
    assert not failures, "FAILURE at the portal:\n" + "\n".join(c.describe() for c in failures)
    assert run.with_status("SUCCESS"), f"no check succeeded:\n{run.tail()}"
