"""Dumas's nameko service container: nameko 2.14's `ServiceContainer` with a leaner worker.

Every service sets it in its config.yaml (`SERVICE_CONTAINER_CLS: shared.container.
DumasContainer`); `nameko run` and nameko's `container_factory` pick the class from there
(`nameko.containers.get_container_cls`).

nameko's `_run_worker` pays, for every worker, whatever the log level: four `_log_time` context
managers (a generator, two `time.time()` and a format string each), the worker's call id stack
built only to be passed to a debug message (a uuid4 from `os.urandom`, a deque, a join), and a
no-op `worker_setup` / `worker_result` / `worker_teardown` call for every dependency provider
(none of Dumas's providers implements them). Here, while nameko's container logger is not
enabled for DEBUG (every config.yaml sets `nameko` to WARNING):

- no timing context managers and no debug messages;
- the call id is made only when something asks for it (`WorkerContext.call_id` is lazy: an
  `RpcProxy` call or a nameko publisher still sends the whole call id stack, the callee's
  worker still receives and extends it);
- only the providers whose class (or instance) overrides a hook are called for it (also when
  DEBUG is on: nameko's `_run_worker` calls these same three methods).

Everything else is nameko's, in nameko's order: dependencies injected, setup hooks, the
method, a failure logged by `nameko.containers` (warning with traceback for an expected
exception, `log.exception` otherwise), the entrypoint's `handle_result`, result hooks, teardown
hooks; an exception escaping any of these still ends the worker's greenthread with it, which
kills the container as nameko does; `max_workers` still bounds the worker pool (spawning is
nameko's). With DEBUG enabled for `nameko.containers` the worker runs nameko's own
`_run_worker` (its timing and debug messages). `_run_worker` keeps nameko's name and its
`worker_ctx` argument (shared/logging.py finds the current worker by that frame), and the hooks
are still called through `_worker_setup` / `_worker_result` / `_worker_teardown` (nameko's
`entrypoint_waiter` patches the last two to see a worker end).

docs/performance.md, "Session 6: nameko's per-worker overhead", has the figures.
"""

import gc
import logging
import sys
import warnings

from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider

# Every RpcProxy of the project sends its requests without publisher confirms, on purpose
# (docs/events.md, "RPC"); nameko still asks for mandatory delivery and warns, once per process,
# that an unroutable request cannot be detected then. Known and documented: not printed.
warnings.filterwarnings("ignore", message="Mandatory delivery was requested, but unroutable",
                        category=UserWarning, module="nameko.amqp.publish")

# nameko's own logger: worker errors keep the logger name they always had.
_log = logging.getLogger("nameko.containers")

_HOOKS = ("worker_setup", "worker_result", "worker_teardown")

_frozen = False


def _freeze_startup_heap() -> None:
    """Once per process, when its first container has started: collect, then move every object
    alive (modules, classes, compiled statements and schemas, the extensions) out of the
    collector's reach (`gc.freeze`). A full collection otherwise walks all of them (~130,000
    objects, 50-70 ms of CPU per service) each time objects made under load survive into the
    oldest generation: one to three times per service per thousand complaints. Frozen objects
    are still freed when their last reference goes; only a reference cycle among them would
    stay (docs/performance.md, "Session 8: the startup heap frozen")."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _implements(provider, hook: str) -> bool:
    return (getattr(type(provider), hook) is not getattr(DependencyProvider, hook)
            or hook in vars(provider))


class DumasContainer(ServiceContainer):
    _hooked = None  # per hook, the providers that implement it; worked out at the first worker

    def start(self):
        # Dependencies may be replaced until the container starts (nameko's
        # `replace_dependencies`): the hooked providers are worked out afresh after that.
        self._hooked = None
        super().start()
        _freeze_startup_heap()

    def _hooked_providers(self):
        hooked = self._hooked
        if hooked is None:
            providers = list(self.dependencies)
            hooked = self._hooked = tuple(
                tuple(p for p in providers if _implements(p, hook)) for hook in _HOOKS)
        return hooked

    def _run_worker(self, worker_ctx, handle_result):
        if _log.isEnabledFor(logging.DEBUG):
            return super()._run_worker(worker_ctx, handle_result)

        service = worker_ctx.service
        for provider in self.dependencies:
            setattr(service, provider.attr_name, provider.get_dependency(worker_ctx))
        self._worker_setup(worker_ctx)

        result = exc_info = None
        try:
            result = getattr(service, worker_ctx.entrypoint.method_name)(
                *worker_ctx.args, **worker_ctx.kwargs)
        except Exception as exc:
            if isinstance(exc, worker_ctx.entrypoint.expected_exceptions):
                _log.warning("(expected) error handling worker %s: %s", worker_ctx, exc,
                             exc_info=True)
            else:
                _log.exception("error handling worker %s: %s", worker_ctx, exc)
            exc_info = sys.exc_info()

        if handle_result is not None:
            result, exc_info = handle_result(worker_ctx, result, exc_info)

        self._worker_result(worker_ctx, result, exc_info)
        # as nameko: break the traceback's reference cycle now rather than at a gc sweep
        del exc_info
        self._worker_teardown(worker_ctx)
        return None

    # Still three methods, called once per worker: nameko's `entrypoint_waiter` (tests) waits
    # for a worker by patching `_worker_result` and `_worker_teardown` on the container.
    def _worker_setup(self, worker_ctx):
        for provider in self._hooked_providers()[0]:
            provider.worker_setup(worker_ctx)

    def _worker_result(self, worker_ctx, result, exc_info):
        for provider in self._hooked_providers()[1]:
            provider.worker_result(worker_ctx, result, exc_info)

    def _worker_teardown(self, worker_ctx):
        for provider in self._hooked_providers()[2]:
            provider.worker_teardown(worker_ctx)
