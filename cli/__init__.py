"""Orca's command line: client commands that talk to the manager's HTTP API.

`cli.commands.COMMANDS` are added to the `orca` group in main.py, beside the service roles.
"""
