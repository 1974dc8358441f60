"""The OpenAI-compatible server (`collm serve`): FastAPI app, request and
response schemas, admission limits, budget policy hook, Prometheus metrics.

    from collm.serve import ServeConfig, create_app
    app = create_app(backend, ServeConfig(model_name="smollm2-135m"), policy=None)

Importing this package imports FastAPI; the CLI does so inside `run` only.
"""

from collm.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
