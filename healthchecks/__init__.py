"""agent-healthchecks: pytest health checks and repairs for tmux-run AI coding agent fleets."""

__version__ = "0.1.0"
