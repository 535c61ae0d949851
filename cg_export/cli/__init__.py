"""Command-line tools: thin typer apps, one module per command, each a call into the library."""
