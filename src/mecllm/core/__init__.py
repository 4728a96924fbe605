"""What every system shares: errors, input checks, atomic file I/O, radio and phase physics,
solve options and statuses, fractional-programming helpers, the generic Dinkelbach loop, and
the data types of experiments. Nothing here knows any system."""
