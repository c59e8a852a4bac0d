"""The REST API under ``/api/v1/``, for bearer tokens only (:mod:`app.api_tokens`).

``bearer.py`` authenticates each request (cookies are ignored), ``views.py``
holds the routes (thin, over the same modules the pages use),
``serialize.py`` turns apps, deployments and statistics into JSON, and
``openapi.py`` is the OpenAPI 3.1 description served at
``/api/v1/openapi.json``.
"""

from .views import bp

__all__ = ["bp"]
