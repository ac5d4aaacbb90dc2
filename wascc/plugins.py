"""The host's plugins: discovery, authorizer hooks and middleware.

Built on pluggy.  :class:`Plugins` registers plugins (checked with
``check_pending`` so a misspelt hook fails loudly), loads the
``wascc.providers`` entry points, and runs the authorization and middleware
hooks in a fixed, documented order with a fail-closed policy:

* an authorizer that raises denies the call;
* a middleware hook that raises fails the invocation with
  :class:`~wascc.errors.MiddlewareError` (the target is not called when a
  ``before`` hook raised); the error is logged with the plugin's name.

When no plugin implements a hook, the host skips it on the hot path:
``active`` is recomputed whenever plugins change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import pluggy

from wascc import hookspecs
from wascc.errors import MiddlewareError, PluginError, Unauthorized
from wascc.wire.capability import canonical_capability
from wascc.wire.claims import Claims
from wascc.wire.invocation import Invocation, InvocationResponse

__all__ = ["ENTRY_POINT_GROUP", "Plugins"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "wascc.providers"


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    return impl.function(*[kwargs[name] for name in impl.argnames])


class Plugins:
    """A pluggy plugin manager with wascc's hooks and policies."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("wascc")
        self.manager.add_hookspecs(hookspecs)
        self.intercepting = False
        self.authorizing = False

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin (a module or object with ``@hookimpl`` functions)."""
        try:
            registered = self.manager.register(plugin, name)
            self.manager.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            raise PluginError(f"plugin {name or plugin!r} was refused: {exc}") from exc
        self._refresh()
        return registered or self.manager.get_name(plugin) or repr(plugin)

    def unregister(self, plugin: object) -> None:
        self.manager.unregister(plugin)
        self._refresh()

    def load_entry_points(self) -> int:
        """Register every plugin of the ``wascc.providers`` entry-point group."""
        try:
            count = self.manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"an installed wascc plugin is malformed: {exc}") from exc
        self._refresh()
        return count

    def _refresh(self) -> None:
        hook = self.manager.hook
        self.intercepting = bool(
            hook.wascc_before_invoke.get_hookimpls() or hook.wascc_after_invoke.get_hookimpls()
        )
        self.authorizing = bool(hook.wascc_authorize.get_hookimpls())

    def provider_factories(self) -> dict[str, Callable[[], Any]]:
        """capability id (canonical) -> factory, from every plugin's ``wascc_providers``."""
        factories: dict[str, Callable[[], Any]] = {}
        for batch in self.manager.hook.wascc_providers():
            for factory in batch or ():
                capability_id = getattr(factory, "capability_id", None)
                if not isinstance(capability_id, str) or not capability_id:
                    raise PluginError(f"provider factory {factory!r} has no capability_id")
                factories.setdefault(canonical_capability(capability_id), factory)
        return factories

    # ---- authorization -----------------------------------------------------

    def authorize(
        self, invocation: Invocation, origin: Claims | None, target: Claims | None
    ) -> None:
        """Raise :class:`Unauthorized` if any authorizer denies."""
        kwargs = {"invocation": invocation, "origin_claims": origin, "target_claims": target}
        self._deny_if(
            self.manager.hook.wascc_authorize.get_hookimpls(),
            kwargs,
            f"{invocation.origin} -> {invocation.target} {invocation.operation}",
        )

    def authorize_binding(self, claims: Claims, capability_id: str, binding: str) -> None:
        kwargs = {"actor_claims": claims, "capability_id": capability_id, "binding": binding}
        self._deny_if(
            self.manager.hook.wascc_authorize_binding.get_hookimpls(),
            kwargs,
            f"binding {claims.subject} to {capability_id} ({binding})",
        )

    def _deny_if(self, impls: Iterable[pluggy.HookImpl], kwargs: dict[str, Any], what: str) -> None:
        for impl in impls:
            try:
                verdict = _call(impl, kwargs)
            except Exception as exc:
                log.error("authorizer %s raised on %s: %s", impl.plugin_name, what, exc)
                raise Unauthorized(
                    f"{what} denied: authorizer {impl.plugin_name} failed ({exc})"
                ) from exc
            if verdict is False or isinstance(verdict, str):
                reason = verdict if isinstance(verdict, str) else "no reason given"
                raise Unauthorized(f"{what} denied by authorizer {impl.plugin_name}: {reason}")

    # ---- middleware --------------------------------------------------------

    def run(self, invocation: Invocation, perform: Callable[[Invocation], bytes]) -> bytes:
        """Run ``perform`` inside the before/after middleware chain."""
        impls = list(reversed(self.manager.hook.wascc_before_invoke.get_hookimpls()))
        current = invocation
        response: InvocationResponse | None = None
        failure: BaseException | None = None
        for impl in impls:
            try:
                result = _call(impl, {"invocation": current})
            except Exception as exc:
                raise self._middleware_failed(impl, "wascc_before_invoke", current, exc) from exc
            if result is None:
                continue
            if isinstance(result, InvocationResponse):
                response = replace(result, invocation_id=current.id)
                break
            if isinstance(result, Invocation):
                if (result.origin, result.target, result.binding) != (
                    current.origin,
                    current.target,
                    current.binding,
                ):
                    raise MiddlewareError(
                        f"middleware {impl.plugin_name} tried to redirect {current.operation} "
                        f"from {current.target} to {result.target}; middleware may rewrite the "
                        "operation and payload only"
                    )
                current = replace(result, id=current.id)
                continue
            raise MiddlewareError(
                f"middleware {impl.plugin_name} returned {type(result).__name__} from "
                "wascc_before_invoke (expected None, Invocation or InvocationResponse)"
            )
        if response is None:
            try:
                response = InvocationResponse(current.id, perform(current))
            except Exception as exc:
                failure = exc
                response = InvocationResponse(current.id, error=str(exc))
        original = response
        for impl in reversed(self.manager.hook.wascc_after_invoke.get_hookimpls()):
            try:
                result = _call(impl, {"invocation": current, "response": response})
            except Exception as exc:
                raise self._middleware_failed(impl, "wascc_after_invoke", current, exc) from exc
            if result is None:
                continue
            if not isinstance(result, InvocationResponse):
                raise MiddlewareError(
                    f"middleware {impl.plugin_name} returned {type(result).__name__} from "
                    "wascc_after_invoke (expected None or InvocationResponse)"
                )
            response = replace(result, invocation_id=current.id)
        if response.error is None:
            return response.msg
        if failure is not None and response is original:
            raise failure
        raise MiddlewareError(response.error)

    @staticmethod
    def _middleware_failed(
        impl: pluggy.HookImpl, hook: str, invocation: Invocation, exc: Exception
    ) -> MiddlewareError:
        log.error(
            "middleware %s.%s raised on %s -> %s %s: %s",
            impl.plugin_name,
            hook,
            invocation.origin,
            invocation.target,
            invocation.operation,
            exc,
        )
        return MiddlewareError(
            f"{invocation.operation} from {invocation.origin} to {invocation.target} failed: "
            f"middleware {impl.plugin_name} raised in {hook}: {exc}"
        )
