"""Logging with secrets redacted (and, later, metrics)."""
