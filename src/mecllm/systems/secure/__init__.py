"""Secure offsite-tuning (seed paper 003): see docs/secure.md."""
