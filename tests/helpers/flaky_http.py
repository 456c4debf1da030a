"""A small HTTP server for the spec tests' http steps (run: ``python -m
tests.helpers.flaky_http PORT LOG``). Every request is logged as a JSON line.

- ``GET /issues/{n}``: an issue as JSON (404 for n > 100);
- ``GET /flaky/{key}?fail=N``: 503 for the first N requests with that key, then 200;
- ``GET /limited/{key}``: 429 with ``Retry-After: 1`` the first time, then 200;
- ``POST /echo``: the request's JSON body and headers back.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

seen: Counter[str] = Counter()


def build(log: str) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        with open(log, "a") as sink:
            sink.write(json.dumps({"method": request.method, "path": request.url.path,
                                   "at": time.time(),
                                   "idempotency_key": request.headers.get("idempotency-key"),
                                   "authorization": request.headers.get("authorization")})
                       + "\n")
        return await call_next(request)

    @app.get("/issues/{number}")
    def issue(number: int) -> Any:
        if number > 100:
            return JSONResponse({"detail": f"no issue {number}"}, 404)
        return {"number": number, "title": f"crash on start #{number}",
                "files": [f"src/mod{i}.py" for i in range(number % 5 + 1)]}

    @app.get("/flaky/{key}")
    def flaky(key: str, fail: int = 2) -> Any:
        seen[key] += 1
        if seen[key] <= fail:
            return JSONResponse({"detail": "try again"}, 503, headers={"Retry-After": "0"})
        return {"key": key, "tries": seen[key]}

    @app.get("/limited/{key}")
    def limited(key: str) -> Any:
        seen["limited:" + key] += 1
        if seen["limited:" + key] == 1:
            return JSONResponse({"detail": "slow down"}, 429, headers={"Retry-After": "1"})
        return {"key": key, "tries": seen["limited:" + key]}

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return {"body": await request.json(), "headers": dict(request.headers)}

    return app


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]),
                log_level="warning")
