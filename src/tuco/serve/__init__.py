"""`tuco serve`: an OpenAI-compatible HTTP endpoint over a pair (or chain), with alpha per request and TuCo in
every response, requests batched across clients into one forward pass per step, and a playground page.

Laid out per endpoint, as vLLM's ``entrypoints/openai/``:

- ``protocol``: the typed wire format: request bodies validated once into calls (``GenerateCall``,
  ``ScoreCall``, ...; alpha and sampling parsed where the call is built, a problem is an OpenAI 400), the
  answers' objects and OpenAI error objects. No model code.
- ``routes/``: one module per route family: ``completions`` (chat and text, streaming or not), ``scoring``
  (``/v1/tuco/score``), ``tokenization`` (lm-evaluation-harness's tokenizer routes), ``system`` (models,
  health, metrics), ``playground`` (the page, its info, "save as run").
- ``app``: the application factory and the uvicorn runner that drains on SIGTERM.
- ``state``: what the routes share (``Server``: settings, the model thread, the tokenizer's thread).
- ``worker``: the thread that owns the model and its ``tuco.measures.decoding.Decoder``: a bounded queue,
  admission into the running batch, scoring passes between decoding steps, events back to the handlers.
- ``text``: incremental detokenisation and stop strings; ``cancellation``: ending the work of a client that
  hung up; ``middleware``: Host and Content-Type checks (plain ASGI); ``monitoring``: Prometheus metrics and
  the access log; ``saving``: responses written as a run directory; ``static/``: the page.

Nothing on the event loop waits for the model or the tokenizer: bodies are parsed and tokenised on the
tokenizer's own thread, the model runs on its own, and they talk through ``call_soon_threadsafe``.

Needs the ``serve`` extra (``pip install 'tuco[serve]'``: FastAPI, uvicorn, prometheus-client).
"""
