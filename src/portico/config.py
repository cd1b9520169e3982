"""The root settings model and its loader.

`portico.yaml` is read once at start-up with a round-trip YAML parser (to know every key's line), overlaid with
`PORTICO_*` environment variables, then validated by pydantic. Any problem stops start-up with a `ConfigError`
naming the dotted key and the line, e.g. ``servers[1].timeout_s (line 14): Input should be greater than 0``.

Each component owns its section model; this module only assembles them. Secrets never sit in plain config:
sensitive values must be references, `${env:NAME}` or `${file:/path}`, resolved by `resolve_secret`.

Environment overrides: ``PORTICO_LISTEN__PORT=9000`` sets ``listen.port``; ``PORTICO_SERVERS__GITHUB__URL=...``
sets ``url`` of the server whose id is ``github``. Values are parsed as YAML scalars.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from portico.audit.settings import AuditSettings
from portico.catalog.settings import PinningSettings
from portico.codemode.settings import CodeModeSettings
from portico.dlp.settings import DlpSettings
from portico.errors import ConfigError
from portico.identity.context.settings import DeviceSettings, NetworkSettings, TlsSettings
from portico.identity.settings import IdentitySettings, TokenSettings
from portico.inspection.settings import InspectionSettings, PublicSettings
from portico.netaddr import is_loopback_host
from portico.policy.settings import PolicySettings
from portico.store.settings import StoreSettings
from portico.upstream.oauth_settings import UpstreamOAuthSettings
from portico.vault.refs import parse_vault_ref
from portico.vault.settings import VaultSettings

SERVER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_SECRET_REF = re.compile(r"^\$\{(env|file):([^}]+)\}$")
_SENSITIVE_HEADER = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password", re.IGNORECASE)
_TOP_LEVEL_SCALARS = frozenset({"auth"})
_SENSITIVE_ENV = re.compile(r"token|secret|password|passwd|api[-_]?key|private[-_]?key|credential", re.IGNORECASE)


_REFERENCE_FORMS = "${vault:NAME}, ${env:NAME} or ${file:PATH}"


def _is_reference(value: str) -> bool:
    return _SECRET_REF.match(value) is not None or parse_vault_ref(value) is not None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenSettings(_Section):
    host: str = Field("127.0.0.1", description="Address to bind. Non-loopback requires authentication on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to bind (0 picks a free one).")
    tls: TlsSettings = Field(
        default_factory=TlsSettings,
        description="TLS on Portico's own listener, optionally asking clients for a device certificate (mTLS).",
    )


class HttpSettings(_Section):
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body accepted (else 413).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values accepted (DNS-rebinding guard); loopback names are always allowed "
        "when bound to loopback. `name:*` allows any port.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Origin header values accepted from browsers (exact match, or `*:port`)."
    )
    public_url: str | None = Field(
        None,
        description="The base URL clients use to reach Portico (e.g. https://mcp.example.com behind a proxy); "
        "resource identifiers (token audiences) and OAuth URLs are built from it. Defaults to "
        "http://<listen.host>:<listen.port>.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("must have no query or fragment")
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise ValueError("must be https unless the host is loopback (tokens would travel in the clear)")
        return value.rstrip("/")


class SessionSettings(_Section):
    idle_timeout_s: float = Field(1800.0, gt=0, description="A legacy-era session idle this long is ended.")
    max_sessions: int = Field(10_000, gt=0, description="Most concurrent legacy-era sessions (503 past it).")


class RestartSettings(_Section):
    initial_backoff_s: float = Field(0.5, gt=0, description="First wait before restarting/reconnecting.")
    max_backoff_s: float = Field(30.0, gt=0, description="Backoff ceiling (doubles up to it).")


class ServerSettings(_Section):
    """One upstream MCP server: remote (`url`) or a local stdio program Portico runs (`command`)."""

    id: str = Field(description="Unique id; the namespace prefix of its tools and its per-server URL.")
    title: str | None = Field(None, description="Human name shown in listings.")
    url: str | None = Field(None, description="Remote endpoint (Streamable HTTP, or legacy SSE with transport: sse).")
    transport: Literal["streamable_http", "sse", "stdio"] | None = Field(
        None, description="Defaults to streamable_http for `url`, stdio for `command`."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent upstream; credentials must be ${env:..}/${file:..} refs."
    )
    command: list[str] | None = Field(None, description="argv of a stdio server (no shell is ever used).")
    args: list[str] = Field(default_factory=list, description="Extra arguments appended to `command`.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of a stdio server; of Portico's own it inherits only PATH, HOME, LANG, "
        "PYTHONPATH and VIRTUAL_ENV.",
    )
    cwd: str | None = Field(None, description="Working directory of a stdio server.")
    era: Literal["auto", "legacy", "modern"] = Field(
        "auto",
        description="Protocol era toward a Streamable HTTP upstream: `auto` probes both and uses the caller's era "
        "when the upstream has it. stdio and SSE upstreams always speak the handshake era.",
    )
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout for this upstream.")
    max_message_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest single message accepted from this upstream (else an error)."
    )
    connect_timeout_s: float = Field(15.0, gt=0, description="Timeout to connect and initialize.")
    enabled: bool = Field(True, description="A disabled server is neither connected nor listed.")
    restart: RestartSettings = Field(default_factory=RestartSettings, description="Reconnect/restart backoff.")
    tags: list[str] = Field(
        default_factory=list,
        description="Labels other sections select servers by (DLP rules: `finance`, `third-party`, …): "
        "lowercase letters, digits and '-'.",
    )
    pinning: PinningSettings = Field(
        default_factory=PinningSettings,
        description="Tool pinning (rug-pull guard): approved tool definitions are pinned by hash; a changed "
        "definition is quarantined until an administrator re-approves it.",
    )
    public: PublicSettings | None = Field(
        None,
        description="Public-server mode: anonymous callers may use this server at its own URL, rate-limited per "
        "client address, with a small body limit, inspection both ways, and only what a policy rule naming the "
        "user `anonymous` permits. `public: true` takes the defaults.",
    )
    oauth: UpstreamOAuthSettings | None = Field(
        None,
        description="Per-user OAuth toward this upstream (Streamable HTTP `url` only): Portico is the OAuth "
        "client, each user connects once, their tokens are kept in the vault.",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not SERVER_ID.match(value):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter or digit, ≤ 48 chars")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_shape(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not SERVER_ID.match(tag):
                raise ValueError(f"tag {tag!r}: must be lowercase letters, digits and '-', ≤ 48 chars")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ServerSettings:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of `url` (remote server) or `command` (stdio server)")
        if self.command is not None and not self.command:
            raise ValueError("`command` must name a program")
        kind = self.kind
        if self.url is not None and kind == "stdio":
            raise ValueError("transport stdio needs `command`, not `url`")
        if self.command is not None and kind != "stdio":
            raise ValueError(f"transport {kind} needs `url`, not `command`")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError("`url` must be http:// or https://")
        if self.oauth is not None and kind != "streamable_http":
            raise ValueError("oauth: per-user OAuth needs a Streamable HTTP `url` (not stdio or legacy SSE)")
        for value in (*self.headers.values(), *self.env.values()):
            parse_vault_ref(value)  # a malformed ${vault:…} is an error here, not a literal header at connect time
        for name, value in self.headers.items():
            if _SENSITIVE_HEADER.search(name) and not _is_reference(value):
                raise ValueError(f"header {name!r} carries a credential: use {_REFERENCE_FORMS}")
        for name, value in self.env.items():
            if _SENSITIVE_ENV.search(name) and not _is_reference(value):
                raise ValueError(f"env {name!r} looks like a secret: use {_REFERENCE_FORMS}")
        return self

    @property
    def kind(self) -> Literal["streamable_http", "sse", "stdio"]:
        if self.transport is not None:
            return self.transport
        return "stdio" if self.command is not None else "streamable_http"


class CatalogSettings(_Section):
    separator: str = Field("__", description="Between server id and tool/prompt name in the portal.")
    refresh_interval_s: float = Field(300.0, gt=0, description="Re-list every upstream this often.")
    page_size: int = Field(500, gt=0, le=10_000, description="Items per page of a list result.")
    pin_sync_interval_s: float = Field(
        5.0, gt=0, description="How often a running Portico re-reads tool approvals (`portico tools approve`)."
    )

    @field_validator("separator")
    @classmethod
    def _separator_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[._-]{1,3}", value):
            raise ValueError("must be 1-3 of '.', '_' or '-' (tool names allow only [A-Za-z0-9._-])")
        return value


class Settings(_Section):
    """The whole of `portico.yaml`."""

    auth: Literal["none", "oauth"] = Field(
        "none",
        description="`oauth`: every MCP request needs an access token for the URL it calls (OAuth 2.1 resource "
        "server, tokens from the embedded authorization server). `none` serves without authentication and is "
        "allowed only while bound to loopback.",
    )
    network: NetworkSettings = Field(
        default_factory=NetworkSettings,
        description="Where calls come from: trusted proxies (X-Forwarded-For), countries of address ranges.",
    )
    devices: DeviceSettings = Field(
        default_factory=DeviceSettings,
        description="Device certificates (mTLS or from a trusted proxy) and the device registry policy decides on.",
    )
    identity: IdentitySettings = Field(
        default_factory=IdentitySettings,
        description="Access tokens, local users, the embedded authorization server and SSO (used by `auth: oauth`).",
    )
    listen: ListenSettings = Field(default_factory=ListenSettings, description="Where Portico listens.")
    http: HttpSettings = Field(default_factory=HttpSettings, description="HTTP front-door limits and checks.")
    sessions: SessionSettings = Field(default_factory=SessionSettings, description="Legacy-era client sessions.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Database (SQLite or PostgreSQL).")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="The audit log.")
    vault: VaultSettings = Field(default_factory=VaultSettings, description="The upstream credential vault.")
    catalog: CatalogSettings = Field(default_factory=CatalogSettings, description="Aggregated catalog.")
    servers: list[ServerSettings] = Field(default_factory=list, description="Upstream MCP servers.")
    policy: PolicySettings = Field(
        default_factory=PolicySettings,
        description="Who may see and use which server, tool, prompt and resource (implicit deny).",
    )
    dlp: DlpSettings = Field(
        default_factory=DlpSettings,
        description="Data loss prevention: which sensitive values may go to which servers and come back to whom.",
    )

    inspection: InspectionSettings = Field(
        default_factory=InspectionSettings,
        description="Prompt-injection scoring of tool results, resource contents and prompts (and of a public "
        "server's inbound arguments): block, flag or annotate by threshold.",
    )
    codemode: CodeModeSettings = Field(
        default_factory=CodeModeSettings,
        description="Code Mode: `?codemode=search_and_execute` collapses the caller's tools into `search` and "
        "`execute`, whose JavaScript or Python runs in a sandbox; every tool call it makes is governed and audited.",
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        seen: set[str] = set()
        for server in self.servers:
            if server.id in seen:
                raise ValueError(f"duplicate server id {server.id!r}")
            seen.add(server.id)
        for index, provider in enumerate(self.identity.sso):
            parse_vault_ref(provider.client_secret)
            if not _is_reference(provider.client_secret):
                raise ValueError(
                    f"identity.sso[{index}].client_secret: must be a reference, {_REFERENCE_FORMS} "
                    f"(the vault scope is sso:{provider.id})"
                )
        for index, client in enumerate(self.identity.server.clients):
            if client.secret is not None:
                parse_vault_ref(client.secret)
                if not _is_reference(client.secret):
                    raise ValueError(
                        f"identity.server.clients[{index}].secret: a client secret must be a reference, "
                        f"{_REFERENCE_FORMS} (the vault scope is oauth-client:{client.client_id})"
                    )
        return self

    def server(self, server_id: str) -> ServerSettings | None:
        return next((s for s in self.servers if s.id == server_id), None)

    @property
    def public_url(self) -> str:
        """Portico's base URL as clients see it (no trailing slash): `http.public_url`, else the listen address."""
        if self.http.public_url is not None:
            return self.http.public_url.rstrip("/")
        host = self.listen.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        scheme = "https" if self.listen.tls.cert_file is not None else "http"
        return f"{scheme}://{shown}:{self.listen.port}"

    @property
    def token_settings(self) -> TokenSettings:
        """`identity.tokens`, its issuer defaulting to the public URL when not written in the config."""
        tokens = self.identity.tokens
        if "issuer" in tokens.model_fields_set:
            return tokens
        return tokens.model_copy(update={"issuer": self.public_url})


is_loopback = is_loopback_host  # the name transport/guard and this module use


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to serve without authentication on a non-loopback address, or OAuth without a public URL there.

    Raises:
        ConfigError: `auth: none` and `host` is not a loopback address; `auth: oauth` on a non-loopback
            address without `http.public_url`.
    """
    if settings.auth == "none" and not is_loopback(host):
        raise ConfigError(
            f"auth (none) is only allowed while bound to loopback, not {host!r}: bind 127.0.0.1 or enable auth"
        )
    if settings.auth == "oauth" and not is_loopback(host) and settings.http.public_url is None:
        raise ConfigError(
            f"http.public_url must be set when serving OAuth on {host!r}: token audiences and the authorization "
            "server's URLs are built from it"
        )


def resolve_secret(value: str, env: Mapping[str, str] | None = None) -> str:
    """Resolve a `${env:NAME}` / `${file:PATH}` reference; a plain value is returned as is.

    Raises:
        ConfigError: the variable is unset or the file unreadable (the message names the reference, not a value).
    """
    match = _SECRET_REF.match(value)
    if match is None:
        return value
    kind, ref = match.groups()
    if kind == "env":
        source = os.environ if env is None else env
        if ref not in source:
            raise ConfigError(f"secret reference ${{env:{ref}}}: environment variable {ref} is not set")
        return source[ref]
    try:
        return Path(ref).read_text().rstrip("\n")
    except OSError as exc:
        raise ConfigError(f"secret reference ${{file:{ref}}}: cannot read the file ({exc.strerror})") from exc


# ----------------------------------------------------------------------------------------------- loading


def load(path: Path | str | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, overlay and validate a config file (or only the environment when `path` is None).

    Raises:
        ConfigError: unreadable file, YAML syntax error, or a validation error naming key and line.
    """
    env = os.environ if env is None else env
    data: Any = CommentedMap()
    label = "<environment>"
    if path is not None:
        label = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {label}: {exc.strerror}") from exc
        try:
            data = YAML(typ="rt").load(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{label}{where}: {problem}") from exc
        if data is None:
            data = CommentedMap()
        if not isinstance(data, dict):
            raise ConfigError(f"{label}: the top level must be a mapping of sections")
    _apply_env(data, env)
    try:
        return Settings.model_validate(_plain(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        line = _line_of(data, loc)
        where = f" (line {line})" if line is not None else ""
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{label}: {_dotted(loc)}{where}: {message}{more}") from exc


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node of `loc` that exists in the parsed document."""
    line: int | None = None
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    if line is None and isinstance(data, CommentedMap) and data.lc.line is not None and len(data) > 0:
        line = data.lc.line + 1
    return line


def _apply_env(data: Any, env: Mapping[str, str]) -> None:
    for key, raw in env.items():
        if not key.startswith("PORTICO_"):
            continue
        if "__" not in key and key.removeprefix("PORTICO_").lower() not in _TOP_LEVEL_SCALARS:
            continue  # e.g. PORTICO_AUDIT_KEY: a secret some component reads itself, not a config key
        parts = [p.lower() for p in key.removeprefix("PORTICO_").split("__")]
        value = YAML(typ="safe").load(raw) if raw else ""
        node = data
        if parts[0] == "servers" and len(parts) >= 3:
            servers = node.setdefault("servers", CommentedSeq())
            server_id = parts[1].replace("_", "-")
            entry = next((s for s in servers if isinstance(s, dict) and s.get("id") == server_id), None)
            if entry is None:
                entry = CommentedMap(id=server_id)
                servers.append(entry)
            node, parts = entry, parts[2:]
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = CommentedMap()
                node[part] = child
            node = child
        node[parts[-1]] = value
