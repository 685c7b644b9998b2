"""The distilled summarizer: ∞-gram critics, a weight-free teacher and a small numpy student."""
