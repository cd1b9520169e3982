"""The `portico` command line: thin commands over the library (serve, demo, audit, config)."""
