"""Index building and inspection tools: build, verify, info."""
