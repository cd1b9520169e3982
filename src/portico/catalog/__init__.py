"""The aggregated, namespaced catalog of every upstream's tools, prompts, resources and templates.

Sits between the pipeline and `upstream`: `RouteStage` resolves names to servers, `CatalogStage` answers lists
and the handshake. May import `portico.types`, `portico.errors`, `portico.config`, `portico.upstream`.
"""
