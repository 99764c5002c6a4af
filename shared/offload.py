"""Blocking or CPU-heavy calls kept off eventlet's hub.

Under eventlet a call that blocks in the kernel (os.fsync) or holds the CPU for long (decoding a
phone photo) stops every greenthread of the process: event consumers, HTTP, timers. `off_the_hub`
runs it on eventlet's native thread pool when the process is monkey-patched (services under
`nameko run`), and directly otherwise (commands, tests).
"""

from eventlet import patcher, tpool


def off_the_hub(function, *args):
    """`function(*args)`, on a native thread when eventlet's threading is in use."""
    if patcher.is_monkey_patched("thread"):
        return tpool.execute(function, *args)
    return function(*args)


__all__ = ["off_the_hub"]
