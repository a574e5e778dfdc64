"""Command-line helpers outside the `dreamkit` command (`python -m dreamkit.tools.X`)."""
