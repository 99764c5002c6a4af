"""Bounded waiting on a condition (never a bare sleep for asynchronous work)."""

import time


class TimedOut(AssertionError):
    pass


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, message: str = ""):
    """Poll `condition()` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimedOut(f"condition not met within {timeout}s: {message or condition} "
                           f"(last value: {last!r})")
        time.sleep(interval)
