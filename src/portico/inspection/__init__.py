"""Content inspection: detectors for tool poisoning and prompt injection, the WAF stage, and public-server mode.

Pure detectors: `poisoning` judges an upstream's tool definitions at catalog time (rules aligned with agent-scan
E001/E002/W021, plus pinning hashes and diffs), `injection` scores free text such as tool results, `learned` is
the optional classifier (the `ml` extra). They may import only the standard library, their own third-party
libraries and `portico.inspection` itself.

In the flow: `settings` (the `inspection:` section and `servers[].public`), `texts` and `scoring` (what of a
message is scored and the verdict; pure), `stage.InspectionStage` (after policy, before the catalog) and
`public` (anonymous callers: admission at the edge for `identity.gate`, `PublicPolicyStage` after policy). These
also import `portico.types`, `portico.errors`, `portico.metrics`, `portico.dlp`, `portico.policy` and, for
`public`, `portico.transport` (the 429 refusal and the rate limiter). `portico.config` imports `settings` only.
"""
