"""Carrying a fine-tuning plan out for real: MiniLM split training over loopback HTTP."""
