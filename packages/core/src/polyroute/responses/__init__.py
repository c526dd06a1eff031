"""OpenAI's Responses API (``POST /v1/responses``), served for every deployment.

OpenAI and Azure deployments get the request as it is (pass-through); every other deployment gets it as a Chat
Completions request through its usual adapter (:mod:`polyroute.responses.translate`), and the answer comes back as a
Response object or its typed event stream. :mod:`polyroute.responses.store` keeps responses for
``previous_response_id`` and ``GET /v1/responses/{id}``; :mod:`polyroute.responses.api` is the
:class:`~polyroute.api.Api` the transport serves. Nothing here loads until the first request to the path.
"""
