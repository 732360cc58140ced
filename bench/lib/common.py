# copied from shared/peers/lib (this project's shared benchmark material)
"""Shared helpers for the peerbench Python clients (stdlib only)."""
import time

def payload(i, size):
    """Message i: 8-digit sequence number, then filler letters, exactly `size` bytes."""
    head = b"%08d" % i
    fill = bytes(97 + (j % 26) for j in range(size))
    return (head + fill)[:size]

def now():
    return time.perf_counter()
