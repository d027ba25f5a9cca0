"""Test support, apart from the product: real worlds (registries, a private tmux server, Claude stand-ins)
for the project's tests, the benchmark and `--demo`."""
