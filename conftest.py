"""Load the agent-healthchecks plugin when running from a checkout (installed, its entry point does)."""

pytest_plugins = ["healthchecks.plugin"]
