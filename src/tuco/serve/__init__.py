"""`tuco serve`: an OpenAI-compatible HTTP endpoint over a pair (or chain), with alpha per request and TuCo in
every response, requests batched across clients into one forward pass per step.

- ``protocol``: the OpenAI wire format (request bodies validated into ``Call``s, responses, stream chunks,
  error objects).
- ``worker``: the thread that owns the model and its ``tuco.measures.decoding.Decoder``: a bounded queue, admission
  into the running batch, stop strings, events back to the request handlers.
- ``app``: the FastAPI application (routes, API key, size limits, errors, metrics, access log) and ``run``.

Needs the ``serve`` extra (``pip install 'tuco[serve]'``: FastAPI, uvicorn, prometheus-client).
"""
