"""The `minibert` command: main.py parses and dispatches, one module per command group."""
