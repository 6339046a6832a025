"""The Celery app, created on first use (PERFORMANCE.md G9: web workers import only what they serve).

Domains keep writing `from portal.extensions import celery` and `@celery.task(...)`: until something needs
Celery (a `.delay()`, the worker or beat command, `celery.conf`), the decorator only records the function
and its options, and Celery, kombu and billiard are not imported. The first real use builds the Celery app,
applies every configuration `create_app` registered (`configure`), in order, and registers every task
recorded so far; from then on everything is forwarded to the real objects.
"""

from __future__ import annotations

from typing import Any, Callable


class LazyTask:
    """Stands for a task until Celery exists; any attribute or call goes to the real task."""

    def __init__(self, owner: "LazyCelery", fn: Callable, args: tuple, opts: dict):
        self._owner, self._fn, self._args, self._opts = owner, fn, args, opts
        self._task = None
        self.__name__ = getattr(fn, "__name__", "task")
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__

    def _bind(self, real) -> None:
        self._task = real.task(*self._args, **self._opts)(self._fn)

    @property
    def real(self):
        if self._task is None:
            self._owner.real  # noqa: B018 (creates the app, which binds every recorded task)
        return self._task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:  # e.g. a test replacing `run`: it must reach the task Celery calls
            setattr(self.real, name, value)

    def __call__(self, *args, **kwargs):
        return self.real(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<LazyTask {self._opts.get('name') or self.__name__}{'' if self._task is None else ' (bound)'}>"


class LazyCelery:
    def __init__(self, main: str):
        self._main = main
        self._real = None
        self._tasks: list[LazyTask] = []
        self._configurers: list[Callable] = []

    @property
    def created(self) -> bool:
        return self._real is not None

    @property
    def real(self):
        if self._real is None:
            from celery import Celery

            app = Celery(self._main)
            for configure in self._configurers:
                configure(app)
            for task in self._tasks:
                task._bind(app)
            self._real = app
        return self._real

    def configure(self, fn: Callable) -> None:
        """Run fn(celery_app) now if Celery exists, else when it is created (after earlier ones)."""
        if self._real is not None:
            fn(self._real)
        else:
            self._configurers.append(fn)

    def task(self, *args, **opts):
        if self._real is not None:
            return self._real.task(*args, **opts)
        if len(args) == 1 and callable(args[0]) and not opts:  # bare @celery.task
            return self.task()(args[0])

        def decorate(fn):
            lazy = LazyTask(self, fn, args, opts)
            self._tasks.append(lazy)
            return lazy

        return decorate

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.real, name, value)
