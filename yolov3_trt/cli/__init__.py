"""Shared command-line plumbing: one flag vocabulary, one error convention (exit 2, one line)."""
