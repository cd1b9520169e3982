"""`portico policy …`: ask the policy of a config file what it would decide, and why.

A thin layer over `portico.policy.explain`. Nothing is served or connected: the tool's annotations come from
`--annotation` (a hint left out takes its MCP default, as it would for a tool that does not declare it).
Exit codes: 0 permitted, 1 denied, 2 the config or an option cannot be used.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from portico.config import load as load_config
from portico.errors import ConfigError
from portico.netaddr import parse_ip
from portico.policy import Explanation, PolicySettings, Request, compile_policy, effective_annotations, explain
from portico.policy.conditions import DeviceState
from portico.policy.decide import clip
from portico.policy.model import show_annotations
from portico.policy.settings import PolicyKind
from portico.types import Principal

app = typer.Typer(help="Explain what the policy decides and why.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)


class Device(enum.StrEnum):
    enrolled = "enrolled"
    revoked = "revoked"
    none = "none"


class Kind(enum.StrEnum):
    tools = "tools"
    prompts = "prompts"
    resources = "resources"


@app.callback()
def policy() -> None:
    """Explain what the policy decides and why."""


@app.command("explain")
def explain_command(
    user: Annotated[str, typer.Argument(help="The caller's subject, e.g. alice@example.com.")],
    server: Annotated[str, typer.Argument(help="Server id.")],
    tool: Annotated[str, typer.Argument(help="The upstream's own tool name (prompt name, resource URI).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose policy to ask.")],
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="A group of the caller (repeat).")] = None,
    ip: Annotated[str | None, typer.Option(help="The caller's IP address.")] = None,
    device: Annotated[Device, typer.Option(help="The caller's device: enrolled, revoked or none.")] = Device.none,
    mfa: Annotated[bool, typer.Option("--mfa", help="The caller signed in with a second factor.")] = False,
    at: Annotated[str | None, typer.Option(help="When, ISO 8601 (default now; no offset means UTC).")] = None,
    kind: Annotated[Kind, typer.Option(help="What TOOL names: tools, prompts or resources.")] = Kind.tools,
    client: Annotated[str | None, typer.Option(help="The OAuth client_id of the calling app.")] = None,
    country: Annotated[str | None, typer.Option(help="The caller's ISO country code, e.g. DE.")] = None,
    annotation: Annotated[
        list[str] | None, typer.Option(help="A tool annotation KEY=VALUE, e.g. destructiveHint=false (repeat).")
    ] = None,
) -> None:
    """Print the decision, the deciding rule, the reason, and how every rule fared."""
    try:
        policy = compile_policy(_policy_settings(config))
        now = _when(at)
        if ip is not None and parse_ip(ip) is None:
            raise ConfigError(f"--ip: {clip(ip)!r} is not an IP address")
        raw = _annotations(annotation or [])
    except ConfigError as exc:
        err.print(Text("config error: ", style="red") + Text(exc.public))
        raise typer.Exit(2) from None
    state: DeviceState = device.value
    principal = Principal(
        subject=user,
        groups=frozenset(group or ()),
        client_id=client,
        mfa=mfa,
        device_id=None if device is Device.none else "cli",
        ip=ip,
        claims={"country": country} if country else {},
    )
    policy_kind: PolicyKind = kind.value
    request = Request(principal, server, policy_kind, tool, now, state, effective_annotations(policy_kind, raw))
    explanation = explain(policy, request)
    out = Console(width=None if Console().is_terminal else 160)
    _print(out, request, explanation)
    raise typer.Exit(0 if explanation.decision.allowed else 1)


def _print(out: Console, request: Request, explanation: Explanation) -> None:
    decision = explanation.decision
    verdict = Text("PERMIT", style="bold green") if decision.allowed else Text("DENY", style="bold red")
    when = f"{request.now:%Y-%m-%d %H:%M %Z}"
    who = f"{request.principal.subject} → {request.server_id}/{request.name} ({request.kind}, {when})"
    out.print(verdict + Text(f"  {who}"), soft_wrap=True)  # whole lines: easy to grep
    out.print(Text(f"rule:   {decision.rule}"), soft_wrap=True)
    out.print(Text(f"reason: {decision.reason}"), soft_wrap=True)
    if request.annotations:
        out.print(Text(f"annotations: {show_annotations(request.annotations)}", style="dim"), soft_wrap=True)
    table = Table("rule", "effect", "target", "conditions", "unless", "result", title="rules")
    for check in explanation.checks:
        target = Text("✓ matches", style="green") if check.target_miss is None else Text(f"✗ {check.target_miss}")
        failed = "; ".join(f"needs {want}" for want in check.failed)
        conditions = Text(f"✗ {failed}", style="yellow") if failed else Text("✓ hold", style="green")
        unless = Text("")
        if check.exempt:
            unless = Text("exempt (all hold)", style="green")
        elif check.unless_missing:
            unless = Text(f"not exempt: lacks {', '.join(check.unless_missing)}")
        result = "—"
        if check.rule == decision.rule:
            result = "decides"
        elif check.applies:
            result = "applies"
        name = Text(check.rule)
        if check.description:
            name.append(f"\n{check.description}", style="dim")
        table.add_row(name, check.effect, target, conditions, unless, result)
    if not explanation.checks:
        table.add_row("(no rules)", "", "", "", "", "")
    out.print(table)


def _when(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise ConfigError(f"--at: {clip(at)!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _annotations(pairs: list[str]) -> dict[str, bool | str]:
    raw: dict[str, bool | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--annotation: {clip(pair)!r} is not KEY=VALUE")
        raw[key] = {"true": True, "false": False}.get(value.lower(), value)
    return raw


def _policy_settings(path: Path) -> PolicySettings:
    """The `policy:` section, through the central loader (env overrides apply; errors name the key and line).

    Raises:
        ConfigError: the file is unreadable or invalid.
    """
    return load_config(path).policy
