"""The OpenAI-compatible server (`collm serve`).

    from collm.serve import ServeConfig, create_app
    app = create_app(backend, ServeConfig(model_name="smollm2-135m"), policy=None)

    collm.serve.app        the FastAPI app: routes, errors in OpenAI's shape, body limit
    collm.serve.pipeline   one request: validate, admit, plan, run (collm.pipeline)
    collm.serve.responses  the response bodies and the per-request metrics
    collm.serve.stream     `stream: true`: the answer as server-sent events of chunks
    collm.serve.schemas    request and response schemas (pydantic)
    collm.serve.limits     API keys, model slots, token buckets
    collm.serve.scope      a per-request, cancellable view of the backend
    collm.serve.metrics    Prometheus text

Importing this package imports FastAPI; the CLI does so inside `run` only.
"""

from collm.serve.app import create_app
from collm.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
