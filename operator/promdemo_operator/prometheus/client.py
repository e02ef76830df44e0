"""A small async client of one Prometheus's HTTP API (httpx).

`PrometheusAPI` makes GETs with a total timeout per request and a bound on the body
it reads; `snapshot()` makes exactly one targets, one rules and one lessons query
call, whose `parse.Snapshot` then answers for every PromDemo. `base_url` may be a
Prometheus or an API server's service proxy to one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from promdemo_operator.prometheus.parse import (
    LESSONS_QUERY,
    PromAPIError,
    Snapshot,
    response_data,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT_SECONDS", "PrometheusAPI"]

DEFAULT_TIMEOUT_SECONDS = 10.0
#: A Prometheus with thousands of targets answers /api/v1/targets with megabytes.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


class PrometheusAPI:
    """GETs on one Prometheus's HTTP API: a total timeout per call, a bounded body.

    `base_url` may carry a path: `http://127.0.0.1:9090`, or an API server's
    service proxy `https://host/api/v1/namespaces/monitoring/services/prometheus-operated:web/proxy`
    (then pass an `httpx.AsyncClient` that holds the credentials as `client`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._own_client = client is None
        if client is None:
            # Imported when a Prometheus is first asked: httpx (with the click, pygments
            # and rich its CLI pulls in) is ~5 MiB an operator without one never needs.
            import httpx

            client = httpx.AsyncClient(timeout=timeout)
        self._client = client

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> PrometheusAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        """The JSON body of GET `path`; PromAPIError when not a successful API answer."""
        import httpx  # loaded by __init__ or the caller's client: a dict lookup

        url = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout(self.timeout):
                status, raw = await self._read(url, params)
        except TimeoutError as exc:
            raise PromAPIError(f"{path}: no answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise PromAPIError(f"{path}: {type(exc).__name__}: {exc}") from exc
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if status != 200 or not isinstance(body, Mapping):
            error = None
            if isinstance(body, Mapping):
                # Prometheus says `error`; an API server's service proxy answers a Status.
                error = body.get("error") or body.get("message")
            raise PromAPIError(f"{path}: HTTP {status}" + (f": {error}" if error else ""))
        response_data(body, path)  # raises on status: error
        return body

    async def _read(self, url: str, params: Mapping[str, str] | None) -> tuple[int, bytes]:
        limit = self.max_body_bytes
        async with self._client.stream("GET", url, params=params) as response:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise PromAPIError(f"{url}: body of {length} bytes exceeds {limit}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PromAPIError(f"{url}: body exceeds {limit} bytes")
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

    async def targets(self) -> Mapping[str, Any]:
        """GET /api/v1/targets?state=active (dropped targets can be most of the body)."""
        return await self.get("/api/v1/targets", {"state": "active"})

    async def rules(self) -> Mapping[str, Any]:
        return await self.get("/api/v1/rules")

    async def query(self, promql: str) -> Mapping[str, Any]:
        return await self.get("/api/v1/query", {"query": promql})

    async def snapshot(self) -> Snapshot:
        """One targets, one rules and one lessons call, concurrently; failures noted per part."""
        results = await asyncio.gather(
            self.targets(), self.rules(), self.query(LESSONS_QUERY), return_exceptions=True
        )
        parts: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, result in zip(("targets", "rules", "lessons"), results, strict=True):
            if isinstance(result, PromAPIError):
                errors[name] = str(result)
                parts[name] = None
            elif isinstance(result, BaseException):
                raise result
            else:
                parts[name] = result
        return Snapshot(**parts, errors=errors)
