"""`InspectionStage`: the content WAF. Scores what upstreams send to the model for prompt injection, and what
callers send to public servers; keeps credentials from leaving a public server.

Sits after `PolicyStage` (and `PublicPolicyStage`) and before `CatalogStage`, so a call it blocks on the way
in never reaches the upstream, and on the way out it sees the upstream's answer before anything outer (audit,
metrics, the transport) does.

    request   tools/call, prompts/get arguments     scored where `arguments` is on (always on a public server)
    response  tools/call results                    text, embedded resources, resource links, structuredContent
              resources/read contents               text, small text blobs
              prompts/get messages                  and the description
              anything a public server answers      scanned with the DLP scanner for `public.leak_detectors`

Verdicts (see `portico.inspection.scoring`): `block` replaces the message with a `ContentBlockedError`
(-32001) naming the signals and never the text; `annotate` passes the result with a warning the model reads
(`portico.inspection.texts`); `flag` passes it unchanged; every scored message is audited
(`exchange.notes["audit_extra"]["inspection"]` = {score, signals, action, direction}; a request verdict moves
to `inspection_request` when the response is judged too) and counted in
`portico_inspection_verdicts_total{action,direction}`.

Fails closed: if a scorer raises, the message is blocked (action `error`). A credential found in a public
server's answer blocks the whole answer rather than masking it: a key in a public server's output means the
upstream is misconfigured or compromised, a masked answer still carries the context around the key (account,
host, the fact that there is one) to an anonymous caller who can vary the request, and a refusal is the loud
signal that gets the upstream fixed. Masking for signed-in traffic is the DLP stage's job.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import anyio

from portico.config import Settings
from portico.dlp import Finding, Scanner, default_detectors
from portico.errors import ConfigError, ContentBlockedError
from portico.inspection.scoring import Classifier, Direction, Scorer, Verdict, load_learned, verdict
from portico.inspection.settings import InspectionSettings, Profile, PublicSettings
from portico.inspection.texts import annotated, arguments_text, result_text
from portico.metrics import Metrics
from portico.types import CallNext, Exchange, Reply

log = logging.getLogger("portico.inspection")

_RESULT_SWITCH = {"tools/call": "tool_results", "resources/read": "resources", "prompts/get": "prompts"}
_NOUN = {"tools/call": "tool result", "resources/read": "resource content", "prompts/get": "prompt"}
_ARGUMENT_METHODS = frozenset({"tools/call", "prompts/get"})
INLINE_CHARS = 4_096  # shorter texts are scored on the event loop; longer ones (or any, with a classifier) in a thread
SCORER_THREADS = 2


def build_inspection_stage(settings: Settings, metrics: Metrics) -> InspectionStage:
    """The stage for `settings`, with the learned layer loaded as `inspection.learned` says.

    Raises:
        ConfigError: `inspection.servers` names an unknown server, or `inspection.learned: on` without a classifier.
    """
    public = {s.id: s.public for s in settings.servers if s.public is not None and s.public.enabled}
    return InspectionStage(
        settings.inspection,
        [s.id for s in settings.servers],
        public,
        metrics,
        load_learned(settings.inspection.learned),
    )


class InspectionStage:
    def __init__(
        self,
        settings: InspectionSettings,
        server_ids: Collection[str],
        public: Mapping[str, PublicSettings],
        metrics: Metrics,
        classifier: Classifier | None = None,
    ) -> None:
        """Raises:
        ConfigError: `settings.servers` names a server that is not in `server_ids`.
        """
        for server_id in settings.servers:
            if server_id not in server_ids:
                raise ConfigError(f"inspection.servers.{server_id}: no server with this id in `servers`")
        self._settings = settings
        self._profiles = {sid: settings.profile(sid, public=sid in public) for sid in server_ids}
        self._default = settings.profile(None, public=False)
        self._scorer = Scorer(classifier, settings.max_scored_chars)
        self._threads = anyio.CapacityLimiter(SCORER_THREADS)
        self._leaks = _leak_scanners(public)
        self._metrics = metrics
        self._counters: dict[tuple[str, str], Any] = {}

    def adopt(self, fresh: InspectionStage) -> None:
        """Inspect as `fresh` does from the next exchange on (a run-time reload of `inspection:`; public servers'
        settings belong to the server list, which needs a restart)."""
        self._settings, self._profiles, self._default = fresh._settings, fresh._profiles, fresh._default
        self._scorer = fresh._scorer

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Raises:
        ContentBlockedError: the arguments or the answer were blocked (or could not be inspected).
        """
        server = exchange.server_id or exchange.scope
        profile = self._profiles.get(server, self._default) if server is not None else self._default
        method = exchange.method
        if profile.enabled and profile.arguments and method in _ARGUMENT_METHODS:
            text = arguments_text(exchange.params)
            if text:
                judged = await self._judge(exchange, text, profile, "request")
                if judged.action == "block":
                    raise _blocked(judged, "the arguments look like a prompt injection")
        reply = await call_next(exchange)
        scanner = self._leaks.get(server) if server is not None else None
        if scanner is not None:
            self._check_leaks(exchange, reply, scanner)
        switch = _RESULT_SWITCH.get(method)
        if reply.result is None or switch is None or not profile.enabled or not getattr(profile, switch):
            return reply
        if reply.result.get("resultType", "complete") != "complete":
            return reply  # an input_required round: nothing for the model yet
        text = result_text(method, reply.result)
        if not text:
            return reply
        judged = await self._judge(exchange, text, profile, "response")
        if judged.action == "block":
            raise _blocked(judged, f"the {_NOUN[method]} looks like a prompt injection")
        if judged.action == "annotate":
            meta = {"action": "annotate", "score": judged.score, "signals": list(judged.signals)}
            reply.result = annotated(method, reply.result, meta, judged.signals, judged.score)
            reply.encoded = None
        return reply

    async def _judge(self, exchange: Exchange, text: str, profile: Profile, direction: Direction) -> Verdict:
        """Score `text`, record the verdict (audit note and metric), and return it.

        Raises:
            ContentBlockedError: a scorer failed (fail closed; the cause goes to the process log).
        """
        try:
            if len(text) > INLINE_CHARS or self._scorer.classifier is not None:
                scored = await anyio.to_thread.run_sync(self._scorer.score, text, limiter=self._threads)
            else:
                scored = self._scorer.score(text)
        except Exception as exc:  # the scorers' (and a learned model's) one boundary: any failure blocks
            log.exception("inspection of exchange %s failed; blocking it", exchange.id)
            failed = Verdict(0.0, ("scorer-error",), "error", direction)
            self._record(exchange, failed)
            raise ContentBlockedError(
                "Blocked: content inspection failed", detail=f"scorer error: {type(exc).__name__}"
            ) from exc
        judged = verdict(scored, profile, direction, self._settings.oversize)
        self._record(exchange, judged)
        return judged

    def _check_leaks(self, exchange: Exchange, reply: Reply, scanner: Scanner) -> None:
        """Raises:
        ContentBlockedError: a public server's answer (result or error) holds a credential.
        """
        answer: object = reply.result if reply.result is not None else (reply.error.to_json() if reply.error else None)
        if answer is None:
            return
        findings: list[Finding] = scanner.scan(answer)
        if not findings:
            return
        signals = tuple(f"leak:{name}" for name in sorted({f.detector for f in findings}))
        leaked = Verdict(1.0, signals, "block", "response")
        self._record(exchange, leaked)
        detectors = ", ".join(sorted({f.detector for f in findings}))
        raise ContentBlockedError(
            f"Blocked by content inspection: the answer contains a credential ({detectors})",
            data={"direction": "response", "signals": list(signals)},
        )

    def _record(self, exchange: Exchange, judged: Verdict) -> None:
        extra = exchange.notes.setdefault("audit_extra", {})
        if judged.direction == "response" and "inspection" in extra:
            extra["inspection_request"] = extra["inspection"]
        extra["inspection"] = judged.audit()
        key = (judged.action, judged.direction)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._metrics.inspection_verdicts.labels(*key)
        counter.inc()


def _blocked(judged: Verdict, what: str) -> ContentBlockedError:
    shown = ", ".join(judged.signals) if judged.signals else "score only"
    return ContentBlockedError(
        f"Blocked by content inspection: {what} ({shown})",
        data={"direction": judged.direction, "signals": list(judged.signals), "score": judged.score},
    )


def _leak_scanners(public: Mapping[str, PublicSettings]) -> dict[str, Scanner]:
    """One scanner per public server (servers with the same detector list share it)."""
    by_names: dict[frozenset[str], Scanner] = {}
    out: dict[str, Scanner] = {}
    for server_id, settings in public.items():
        names = frozenset(settings.leak_detectors)
        if not names:
            continue
        scanner = by_names.get(names)
        if scanner is None:
            scanner = by_names[names] = Scanner([d for d in default_detectors() if d.name in names])
        out[server_id] = scanner
    return out
