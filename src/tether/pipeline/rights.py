"""Rights: refuse a call the integration's licence does not allow, before anything is spent.

::

    tether.Rights(
        profile={"read", "historical"},                 # what this integration's plan grants
        required_by_endpoint={"export_csv": "export",   # what each endpoint needs
                              "fundamentals": ["read", "fundamentals"]},
        name="newsapi_developer",
    )

``kind = "rights"``, the outermost policy: a call whose endpoint (``ctx.endpoint``) requires a
right the profile does not grant raises ``RightsViolationError`` naming the endpoint, the missing
right(s) and the profile — before the budget, the cache or the network see it: nothing is sent,
nothing is counted. ``ctx.extras["rights.required"]`` (a right or a collection) adds requirements
for one call. ``profile`` also accepts a mapping of right → granted (``{"export": False}``).
An endpoint not listed requires nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import httpx2

from tether._context import CallContext
from tether.errors import RightsViolationError
from tether.pipeline._base import Handler, PolicyEnv

__all__ = ["CALL_REQUIRED_KEY", "Rights", "RightsPolicy"]

#: ``ctx.extras`` key: rights one call requires on top of its endpoint's.
CALL_REQUIRED_KEY: Final = "rights.required"

RightsInput = Collection[str] | Mapping[str, bool] | str


def _names(value: object, where: str) -> frozenset[str]:
    if isinstance(value, str):
        items: Iterable[Any] = (value,)
    elif isinstance(value, Mapping):
        items = (k for k, granted in value.items() if granted)
    elif isinstance(value, Iterable):
        items = value
    else:
        raise ValueError(f"{where} takes a right name or a collection of names, got {value!r}")
    out = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{where} takes right names (non-empty strings), got {item!r}")
        out.add(item.strip())
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Rights:
    """Rights options: the profile (granted rights) and what each endpoint requires."""

    kind: ClassVar[str] = "rights"

    profile: RightsInput = frozenset()
    required_by_endpoint: Mapping[str, RightsInput] = field(default_factory=dict)
    #: The profile's name, for messages (``"newsapi_developer"``).
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", _names(self.profile, "Rights.profile"))
        if not isinstance(self.required_by_endpoint, Mapping):
            raise ValueError(
                "Rights.required_by_endpoint maps endpoint names to rights, "
                f"got {self.required_by_endpoint!r}"
            )
        required = {
            str(endpoint): _names(rights, f"Rights.required_by_endpoint[{endpoint!r}]")
            for endpoint, rights in self.required_by_endpoint.items()
        }
        object.__setattr__(self, "required_by_endpoint", required)

    @property
    def granted(self) -> frozenset[str]:
        return _names(self.profile, "Rights.profile")

    def required(self, endpoint: str | None) -> frozenset[str]:
        """The rights ``endpoint`` requires (none when it is not listed)."""
        if endpoint is None:
            return frozenset()
        return _names(self.required_by_endpoint.get(endpoint, ()), "Rights.required_by_endpoint")

    def missing(self, endpoint: str | None, extra: object = None) -> list[str]:
        """The rights ``endpoint`` (plus ``extra``) needs that the profile lacks, sorted."""
        needed = set(self.required(endpoint))
        if extra is not None:
            needed |= _names(extra, "ctx.extras['rights.required']")
        return sorted(needed - self.granted)

    def build(self, env: PolicyEnv) -> RightsPolicy:
        return RightsPolicy(self, env)


class RightsPolicy:
    """Runtime of ``Rights``: checks each call before it goes any further."""

    __slots__ = ("_env", "options")

    def __init__(self, options: Rights, env: PolicyEnv) -> None:
        self.options = options
        self._env = env

    def __repr__(self) -> str:
        return f"RightsPolicy(profile={sorted(self.options.granted)!r})"

    def check(self, ctx: CallContext) -> None:
        """Raise ``RightsViolationError`` when the call needs a right the profile does not grant."""
        missing = self.options.missing(ctx.endpoint, ctx.extras.get(CALL_REQUIRED_KEY))
        if not missing:
            return
        profile = self.options.name or "the rights profile"
        endpoint = ctx.endpoint or "this call"
        plural = "rights" if len(missing) > 1 else "right"
        error = RightsViolationError(
            f"{endpoint} requires the {plural} {', '.join(repr(m) for m in missing)}, "
            f"which {profile} does not grant",
            service=ctx.service,
            endpoint=ctx.endpoint,
            request_id=ctx.request_id,
            details=[
                {"field": "rights", "message": f"missing right {m!r}", "code": "RIGHTS_001"} for m in missing
            ],
        )
        # Extra facts on the error, for callers that branch on them (the message says the same).
        setattr(error, "missing", missing)  # noqa: B010
        setattr(error, "profile", self.options.name)  # noqa: B010
        raise error

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = request.extensions.get("tether")
        if isinstance(ctx, CallContext):
            self.check(ctx)
        return await next(request)

    def status(self) -> dict[str, Any]:
        """The profile and the requirements (for ``Integration.status()``)."""
        return {
            "profile": self.options.name,
            "granted": sorted(self.options.granted),
            "required_by_endpoint": {k: sorted(v) for k, v in self.options.required_by_endpoint.items()},
        }
